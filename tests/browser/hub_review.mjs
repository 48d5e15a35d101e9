// Search and retrieval at the hub in a real browser: a reviewer of 滨江区
// finds a person by two characters of the name, opens the business file,
// pages through it in the viewer with the keyboard and downloads the
// watermarked PDF; a reviewer of 西湖区 finds nothing of 滨江区; an auditor
// sees what the first reviewer did. Started by tests/tests/hub_web.rs after
// it archived 滨江区's batch (张三丰, 3 pages; 张三, 1 page) and 西湖区's
// (王五, 2 pages), with:
//   DANGAN_BASE_URL, DANGAN_SCREENSHOTS (see harness.mjs)
//   DANGAN_REVIEWER        "user:password", reviewer of 330108 (李四)
//   DANGAN_OTHER_REVIEWER  "user:password", reviewer of 330106
//   DANGAN_AUDITOR         "user:password", auditor of the city
// The PDF is saved as YL2026108001.pdf in the screenshots folder for the
// Rust test to read back with poppler.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "./harness.mjs";

const account = (name) => process.env[name].split(":");

async function login(run, page, user, password, landing) {
  await page.goto(run.url("/login"));
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL(run.url(landing)), page.press('input[name="password"]', "Enter")]);
}

async function searchName(page, name) {
  await page.fill('#search input[name="name"]', name);
  await Promise.all([page.waitForURL(/\/search\?/), page.press('#search input[name="name"]', "Enter")]);
}

// The loaded image's natural width (0 while it failed or is loading).
const loadedWidth = (page, selector) =>
  page.waitForFunction((s) => {
    const img = document.querySelector(s);
    return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : false;
  }, selector);

main("hub-review", async (run) => {
  const [reviewer, reviewerPassword] = account("DANGAN_REVIEWER");
  const [other, otherPassword] = account("DANGAN_OTHER_REVIEWER");
  const [auditor, auditorPassword] = account("DANGAN_AUDITOR");
  const page = await run.newPage();
  let fileUrl;

  await run.step("the reviewer logs in and starts at the search", async () => {
    await login(run, page, reviewer, reviewerPassword, "/search");
    assert.match(await page.textContent("h1"), /档案查询/);
  });

  await run.step("two characters of a name find the person, and only them", async () => {
    await searchName(page, "三丰");
    const rows = page.locator("#hits tr.hit");
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().textContent(), /张三丰/);
    assert.match(await page.textContent("#search-total"), /共 1 件/);
    await searchName(page, "张三");
    assert.equal(await page.locator("#hits tr.hit").count(), 2, "张三 and 张三丰");
    await run.screenshot(page, "search");
  });

  await run.step("the business file opens with its metadata and thumbnails", async () => {
    await Promise.all([
      page.waitForURL(/\/files\/\d+$/),
      page.click('#hits tr.hit:has-text("张三丰") a >> nth=0'),
    ]);
    fileUrl = page.url();
    assert.equal(await page.textContent("#person-name"), "张三丰");
    assert.equal((await page.textContent("#page-count")).trim(), "3");
    const meta = await page.textContent("dl.file-meta");
    assert.match(meta, /D01 基本养老金核定/, "the business type by its name");
    assert.match(meta, /支付类/, "the category by its label");
    assert.match(meta, /永久/, "the retention by its label");
    assert.equal(await page.locator("#thumbs img").count(), 3);
    for (let i = 1; i <= 3; i += 1) {
      await loadedWidth(page, `#thumbs li:nth-child(${i}) img`);
    }
    // Where the paper original is, as 滨江区's edge reported it, and in store.
    const place = await page.textContent("#original-place");
    assert.match(place, /一号库房 \(K01\) › 第1列 › 第1层 › 盒 BOX-0001 › 卷 VOL-0001/);
    assert.match(await page.textContent("#original-loan"), /在库/);
    await run.screenshot(page, "file");
  });

  await run.step("the reviewer asks for the paper original", async () => {
    await page.fill('#loan-request input[name="purpose"]', "待遇复核调阅原件");
    await page.fill('#loan-request input[name="due_date"]', "2099-01-31");
    await Promise.all([page.waitForNavigation(), page.click('#loan-request button[type="submit"]')]);
    assert.match(await page.textContent("#original-requests"), /待遇复核调阅原件/);
    assert.match(await page.textContent("#original-requests"), /2099-01-31/);
  });

  await run.step("the viewer pages through with the keyboard, zooms and rotates", async () => {
    await Promise.all([page.waitForURL(/\/pages\/1$/), page.click("#open-viewer")]);
    await loadedWidth(page, "#page-image");
    await Promise.all([page.waitForURL(/\/pages\/2$/), page.keyboard.press("ArrowRight")]);
    await loadedWidth(page, "#page-image");
    await Promise.all([page.waitForURL(/\/pages\/3$/), page.keyboard.press("ArrowRight")]);
    await loadedWidth(page, "#page-image");
    assert.equal(await page.locator("#next").count(), 0, "page 3 is the last");
    assert.match(await page.textContent("#page-position"), /第 3 页 \/ 3/);
    const before = Number(await page.getAttribute("#stage", "data-scale"));
    await page.keyboard.press("+");
    const after = Number(await page.getAttribute("#stage", "data-scale"));
    assert.ok(after > before, `zoomed in: ${before} → ${after}`);
    await page.keyboard.press("r");
    assert.equal(await page.getAttribute("#stage", "data-rotation"), "90");
    await run.screenshot(page, "viewer");
    await Promise.all([page.waitForURL(/\/pages\/2$/), page.keyboard.press("ArrowLeft")]);
  });

  await run.step("the business file downloads as one watermarked PDF", async () => {
    await page.goto(fileUrl);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-pdf")]);
    assert.equal(download.suggestedFilename(), "YL2026108001.pdf");
    await download.saveAs(join(run.shots, "YL2026108001.pdf"));
  });

  const outsider = await run.newPage();
  await run.step("a reviewer of another district finds nothing of 滨江区", async () => {
    await login(run, outsider, other, otherPassword, "/search");
    await searchName(outsider, "三丰");
    await outsider.waitForSelector("#no-hits");
    assert.equal(await outsider.locator("#hits tr.hit").count(), 0);
    await searchName(outsider, "王五");
    assert.equal(await outsider.locator("#hits tr.hit").count(), 1, "their own district's file");
    const response = await outsider.goto(fileUrl);
    assert.equal(response.status(), 404, "the file itself is out of reach");
    const pdf = await outsider.goto(`${fileUrl.replace("/files/", "/api/v1/files/")}/pdf`);
    assert.equal(pdf.status(), 404, "and so is its PDF");
  });

  const audit = await run.newPage();
  await run.step("the auditor sees what the reviewer did", async () => {
    await login(run, audit, auditor, auditorPassword, "/");
    await audit.goto(run.url(`/audit?actor=${reviewer}`));
    const actions = await audit.locator("#audit tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.action));
    for (const action of ["login", "search", "file.view", "page.view", "file.download"]) {
      assert.ok(actions.includes(action), `${action} in ${actions}`);
    }
    await run.screenshot(audit, "audit-reviewer");
  });
});
