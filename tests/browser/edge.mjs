// The edge web UI in a real browser: an operator and an inspector take
// batches from scanned to accepted with the browser only. Started by
// edge-node/tests/it/web.rs, which prepares the data folder, starts
// `dangan-edge serve` and passes:
//   DANGAN_BASE_URL, DANGAN_SCREENSHOTS (see harness.mjs)
//   DANGAN_OPERATOR, DANGAN_INSPECTOR   "user:password"
//   DANGAN_BATCHES                      JSON {pass, fail, exceptions}
//   DANGAN_UPLOADS                      a folder of scanned page files
//   DANGAN_RESCANS                      new scans (NNNN.jpg) of the failed batch's pages
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { main, summary } from "./harness.mjs";

const [operator, operatorPassword] = process.env.DANGAN_OPERATOR.split(":");
const [inspector, inspectorPassword] = process.env.DANGAN_INSPECTOR.split(":");
const batches = JSON.parse(process.env.DANGAN_BATCHES);
const enc = encodeURIComponent;
const uploads = process.env.DANGAN_UPLOADS;
const rescans = process.env.DANGAN_RESCANS;

async function login(run, page, user, password) {
  await page.goto(run.url("/"));
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL(run.url("/")), page.press('input[name="password"]', "Enter")]);
}

async function batchState(page) {
  return page.getAttribute("#batch-state", "data-state");
}

// QC by keyboard only: start the round with the focused button and Enter,
// then one key per sampled page, then F. Returns the key-to-page timings.
async function qcByKeyboard(run, page, batch, key, screenshot) {
  await page.goto(run.url(`/batches/${enc(batch)}`));
  await page.focus("#qc-start");
  await Promise.all([page.waitForURL(/\/qc$/), page.keyboard.press("Enter")]);
  await page.waitForSelector("#qc[data-page]");
  const sample = JSON.parse(await page.textContent("#qc-data")).sample;
  assert.ok(sample.length > 0, "the round sampled pages");
  for (let i = 0; i < sample.length; i++) {
    assert.equal(await page.getAttribute("#qc", "data-page"), String(sample[i].page), `sample ${i} is shown`);
    await page.keyboard.press(key);
    if (i + 1 < sample.length) {
      // The next sampled page is on screen (its image decoded).
      await page.waitForFunction((n) => window.qcTimings.length >= n, i + 1);
    }
    if (screenshot && i === 1) await run.screenshot(page, screenshot);
  }
  const timings = await page.evaluate(() => window.qcTimings);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("f")]);
  return timings;
}

main("edge", async (run) => {
  const op = await run.newPage();
  const insp = await run.newPage();
  const qcTimings = [];

  await run.step("a visitor without a session is sent to the login page", async () => {
    await op.goto(run.url("/"));
    assert.match(op.url(), /\/login\?next=%2F$/);
    assert.equal((await op.textContent("h1")).trim(), "档案数字化 · 边缘节点");
  });

  await run.step("a wrong password is refused with a message", async () => {
    await op.fill('input[name="username"]', operator);
    await op.fill('input[name="password"]', "not-the-password");
    await Promise.all([op.waitForURL(/error=1/), op.press('input[name="password"]', "Enter")]);
    assert.match(await op.textContent('[role="alert"]'), /用户名或密码错误/);
  });

  await run.step("the operator logs in and sees every batch with its state", async () => {
    await login(run, op, operator, operatorPassword);
    for (const name of Object.values(batches)) {
      const row = op.locator(`tr[data-batch="${name}"]`);
      assert.equal(await row.getAttribute("data-state"), "open", name);
      assert.equal((await row.locator(".state").textContent()).trim(), "扫描中");
    }
  });

  await run.step("the batch list renders quickly with every batch", async () => {
    const rows = await op.locator("tr[data-batch]").count();
    const total = Number((await op.textContent("#batch-total")).trim());
    assert.equal(rows, 100, "one page of the most recent batches");
    const loads = [];
    const served = [];
    for (let i = 0; i < 7; i++) {
      await op.reload();
      const nav = await op.evaluate(() => {
        const [entry] = performance.getEntriesByType("navigation");
        return { dom: entry.domContentLoadedEventEnd - entry.startTime, served: entry.responseEnd - entry.requestStart };
      });
      loads.push(nav.dom);
      served.push(nav.served);
    }
    run.timing("batch_list", { total, rows, render: summary(loads), server_response: summary(served) });
    // The older batches are a page away.
    await Promise.all([op.waitForNavigation(), op.click("#page-next")]);
    assert.equal(await op.locator("tr[data-batch]").count(), 100);
  });

  await run.step("the operator opens a batch and uploads the scanner's files", async () => {
    await op.goto(run.url("/"));
    await op.fill('form.new-batch input[name="name"]', "2026-11 丁");
    await Promise.all([op.waitForNavigation(), op.click('form.new-batch button[type="submit"]')]);
    assert.equal(await batchState(op), "open");
    const files = readdirSync(uploads).sort().map((f) => join(uploads, f));
    await op.setInputFiles("#upload-files", files);
    await Promise.all([op.waitForNavigation({ timeout: 60000 }), op.click("#upload-start")]);
    assert.equal(await op.locator(".thumbs .thumb").count(), files.length);
  });

  await run.step("the operator hands two batches to QC", async () => {
    for (const name of [batches.pass, batches.fail]) {
      await op.goto(run.url(`/batches/${enc(name)}`));
      if (name === batches.pass) await run.screenshot(op, "batch-page");
      await Promise.all([op.waitForNavigation(), op.click('button[data-to="scanned"]')]);
      assert.equal(await batchState(op), "scanned");
    }
  });

  await run.step("the inspector QCs a batch with the keyboard only and it passes", async () => {
    await login(run, insp, inspector, inspectorPassword);
    qcTimings.push(...(await qcByKeyboard(run, insp, batches.pass, "Enter", "qc-screen")));
    assert.equal(await batchState(insp), "accepted");
    assert.match(await insp.textContent("#qc-outcome"), /通过/);
  });

  await run.step("a batch failed in QC goes to rework and lists its defects", async () => {
    qcTimings.push(...(await qcByKeyboard(run, insp, batches.fail, "1", null)));
    assert.equal(await batchState(insp), "rework");
    await insp.goto(run.url(`/batches/${enc(batches.fail)}/report`));
    assert.match(await insp.textContent("table.checks"), /歪斜/);
    const [download] = await Promise.all([insp.waitForEvent("download"), insp.click("#csv")]);
    const csv = await (await download.createReadStream()).toArray();
    assert.match(Buffer.concat(csv).toString("utf8"), /skew/);
  });

  await run.step("the operator rescans a defective page and the batch passes QC again", async () => {
    await op.goto(run.url(`/batches/${enc(batches.fail)}`));
    const input = op.locator("input.rescan-file").first();
    const page = Number(await input.getAttribute("data-page"));
    await input.setInputFiles(join(rescans, `${String(page).padStart(4, "0")}.jpg`));
    await op.waitForSelector("section.rework li.done");
    assert.match(await op.textContent("#rescan-status"), new RegExp(`第 ${page} 页已替换`));
    qcTimings.push(...(await qcByKeyboard(run, insp, batches.fail, "Enter", null)));
    assert.equal(await batchState(insp), "accepted");
  });

  await run.step("the operator splits a business file and fills in its metadata", async () => {
    await op.goto(run.url(`/batches/${enc(batches.exceptions)}/exceptions`));
    assert.equal((await op.textContent("#open-count")).trim(), "0");
    const firstFile = op.locator('.strip[data-file="1"] .page');
    const pagesBefore = await firstFile.count();
    assert.ok(pagesBefore >= 2, "file 1 has pages to split off");
    // Keyboard: select the file's second page and split there.
    await firstFile.nth(1).focus();
    await Promise.all([op.waitForNavigation(), op.keyboard.press("s")]);
    assert.equal(await op.locator('.strip[data-file="1"] .page').count(), 1);
    const codes = await op.locator("li.exception").evaluateAll((els) => els.map((e) => e.dataset.code));
    assert.ok(codes.includes("no_business_number"), `the split-off file has no number: ${codes}`);
    await run.screenshot(op, "exception-queue");
    // Fill in the new file (2): a mistyped person id is caught as it is typed.
    await Promise.all([op.waitForNavigation(), op.click('#file-2 .file-head a')]);
    assert.equal(await op.getAttribute("#metadata-form", "data-file"), "2");
    await op.fill("#meta-business_number", "YL2026BR0001");
    await op.fill("#meta-person_id", "110105194912310021");
    assert.match(await op.textContent("#person-id-check"), /校验码错误/);
    await op.fill("#meta-person_id", "11010519491231002X");
    assert.match(await op.textContent("#person-id-check"), /校验通过/);
    await op.fill("#meta-person_name", "张三丰");
    await op.fill("#meta-business_date", "2026-11-20");
    await op.fill("#meta-organisation", "330106");
    for (const box of await op.locator('.document input[type="checkbox"]').all()) await box.check();
    await Promise.all([op.waitForNavigation(), op.press("#meta-organisation", "Control+Enter")]);
    assert.equal((await op.textContent("#open-count")).trim(), "0");
    await op.waitForSelector("#no-exceptions");
    assert.equal(await op.inputValue("#meta-person_name"), "张三丰");
  });

  await run.step("pages are reordered by dragging and moved between files by keyboard", async () => {
    const strip = op.locator('.strip[data-file="3"] .page');
    assert.ok((await strip.count()) >= 3, "file 3 has pages to reorder");
    await Promise.all([op.waitForNavigation(), strip.nth(0).dragTo(strip.nth(2))]);
    // Shift+↓ moves the focused page to the end of the next file, and back.
    const count = (file) => op.locator(`.strip[data-file="${file}"] .page`).count();
    const [three, four] = [await count(3), await count(4)];
    await op.locator('.strip[data-file="3"] .page').last().focus();
    await Promise.all([op.waitForNavigation(), op.keyboard.press("Shift+ArrowDown")]);
    assert.deepEqual([await count(3), await count(4)], [three - 1, four + 1]);
    await op.locator('.strip[data-file="4"] .page').last().focus();
    await Promise.all([op.waitForNavigation(), op.keyboard.press("Shift+ArrowUp")]);
    assert.deepEqual([await count(3), await count(4)], [three, four]);
    assert.equal((await op.textContent("#open-count")).trim(), "0");
  });

  await run.step("the split batch goes through QC to accepted", async () => {
    await op.goto(run.url(`/batches/${enc(batches.exceptions)}`));
    await Promise.all([op.waitForNavigation(), op.click('button[data-to="scanned"]')]);
    qcTimings.push(...(await qcByKeyboard(run, insp, batches.exceptions, "p", null)));
    assert.equal(await batchState(insp), "accepted");
  });

  await run.step("the language switch is remembered for the user", async () => {
    await op.goto(run.url("/"));
    await Promise.all([op.waitForNavigation(), op.click("#lang-switch")]);
    assert.equal((await op.textContent("header nav a")).trim(), "Batches");
    await op.reload();
    assert.equal((await op.textContent("header nav a")).trim(), "Batches");
    // Another user's screen stays in Chinese.
    await insp.goto(run.url("/"));
    assert.equal((await insp.textContent("header nav a")).trim(), "批次");
    // Logging out and in again keeps English.
    await Promise.all([op.waitForNavigation(), op.click('form[action="/logout"] button')]);
    await login(run, op, operator, operatorPassword);
    assert.equal((await op.textContent("header nav a")).trim(), "Batches");
    assert.equal((await op.locator(`tr[data-batch="${batches.pass}"] .state`).textContent()).trim(), "accepted");
  });

  await run.step("the batch list shows the batches accepted, waiting to sync", async () => {
    for (const name of [batches.pass, batches.fail, batches.exceptions]) {
      const row = op.locator(`tr[data-batch="${name}"]`);
      assert.equal(await row.getAttribute("data-state"), "accepted", name);
      assert.match(await row.textContent(), /queued/);
    }
    await op.goto(run.url("/sync"));
    assert.equal((await op.textContent("#queued")).trim(), "3");
    await op.goto(run.url("/"));
    await run.screenshot(op, "batch-list");
  });

  await run.step("the page viewer pages, zooms and rotates by keyboard", async () => {
    await op.goto(run.url(`/batches/${enc(batches.pass)}/pages/1`));
    await op.waitForFunction(() => document.querySelector("#page-image").naturalWidth > 0);
    const fitted = Number(await op.getAttribute("#stage", "data-scale"));
    await op.keyboard.press("+");
    assert.ok(Number(await op.getAttribute("#stage", "data-scale")) > fitted, "zoomed in");
    await op.keyboard.press("r");
    assert.equal(await op.getAttribute("#stage", "data-rotation"), "90");
    await op.keyboard.press("w");
    await Promise.all([op.waitForURL(/\/pages\/2$/), op.keyboard.press("ArrowRight")]);
    await op.waitForFunction(() => document.querySelector("#page-image").naturalWidth > 0);
    await run.screenshot(op, "page-viewer");
  });

  await run.step("search finds a business file by number and by part of a name", async () => {
    await op.fill('header input[name="q"]', "YL2026BR0001");
    await Promise.all([op.waitForNavigation(), op.press('header input[name="q"]', "Enter")]);
    assert.match(await op.textContent("table.hits"), /张三丰/);
    await op.goto(run.url(`/search?q=${enc("三丰")}`));
    assert.match(await op.textContent("#search-count"), /^1 /);
  });

  run.timing("qc_key_to_next_page", summary(qcTimings));
});
