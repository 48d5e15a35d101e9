// The street-office clerk's upload page in a real browser, through a
// connection that breaks: the clerk scans in a business number, adds three
// pages (the proxy in front of the hub cuts some uploads part way and
// stalls others), sees them all arrive, fixes the order, removes one, and
// adds a large page that is still uploading when the tab is reloaded — it
// resumes by itself. The file is handed in; a reviewer sends it back with
// a reason the clerk then sees. Started by tests/tests/live_upload.rs with
// a fault proxy as the base URL, and:
//   DANGAN_BASE_URL, DANGAN_SCREENSHOTS (see harness.mjs)
//   DANGAN_CLERK      "user:password" of a clerk of a street office
//   DANGAN_REVIEWER   "user:password" of a reviewer of its district
//   DANGAN_PAGES      folder with page-1.png … page-3.png and large.png
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "./harness.mjs";

const account = (name) => process.env[name].split(":");
const pagesDir = process.env.DANGAN_PAGES;
const NUMBER = "SC-2026-0001";

async function login(run, page, user, password, landing) {
  await page.goto(run.url("/login"));
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL(run.url(landing)), page.press('input[name="password"]', "Enter")]);
}

const pageLabels = (page) => page.locator("#pages li span").allTextContents();

main("upload", async (run) => {
  const [clerk, clerkPassword] = account("DANGAN_CLERK");
  const [reviewer, reviewerPassword] = account("DANGAN_REVIEWER");
  const page = await run.newPage();

  await run.step("the clerk starts at the upload page and scans in the business number", async () => {
    await login(run, page, clerk, clerkPassword, "/upload");
    // A handheld scanner types the number and Enter.
    await page.type("#business-number", NUMBER);
    await page.press("#business-number", "Enter");
    await page.waitForSelector('#live-state[data-state="new"]');
    assert.match(page.url(), /number=SC-2026-0001/);
  });

  await run.step("three pages arrive through a connection that breaks", async () => {
    await page.setInputFiles("#files", ["page-3.png", "page-1.png", "page-2.png"].map((f) => join(pagesDir, f)));
    await page.waitForFunction(() => document.querySelectorAll("#queue li").length === 3);
    await page.waitForFunction(() => document.querySelectorAll('#queue li[data-state="done"]').length === 3, null, { timeout: 60000 });
    await page.waitForFunction(() => document.querySelectorAll("#pages li").length === 3);
    // Uploaded in file-name order, whatever order they were picked in.
    assert.deepEqual(await pageLabels(page), ["1. page-1.png", "2. page-2.png", "3. page-3.png"]);
    assert.equal(await page.getAttribute("#live-state", "data-state"), "open");
    await run.screenshot(page, "uploaded");
  });

  await run.step("the clerk fixes the order and removes a page", async () => {
    await page.click('#pages li:nth-child(1) button[title="下移"]');
    await page.waitForFunction(() => document.querySelector("#pages li span")?.textContent === "1. page-2.png");
    assert.deepEqual(await pageLabels(page), ["1. page-2.png", "2. page-1.png", "3. page-3.png"]);
    await page.click('#pages li:nth-child(3) button[title="删除此页"]');
    await page.waitForFunction(() => document.querySelectorAll("#pages li").length === 2);
    assert.deepEqual(await pageLabels(page), ["1. page-2.png", "2. page-1.png"]);
  });

  await run.step("a page still uploading when the tab reloads resumes by itself", async () => {
    await page.setInputFiles("#files", [join(pagesDir, "large.png")]);
    await page.waitForFunction(() => {
      const bar = document.querySelector('#queue li[data-name="large.png"] progress');
      return bar && bar.value > 0 && bar.value < 100;
    }, null, { timeout: 30000 });
    await page.reload();
    // The queue is picked up again from the browser's storage.
    await page.waitForSelector('#queue li[data-name="large.png"]');
    await page.waitForFunction(() => document.querySelector('#queue li[data-name="large.png"]')?.dataset.state === "done", null, { timeout: 60000 });
    await page.waitForFunction(() => document.querySelectorAll("#pages li").length === 3);
    assert.deepEqual(await pageLabels(page), ["1. page-2.png", "2. page-1.png", "3. large.png"]);
  });

  await run.step("the file is handed in for review", async () => {
    await page.click("#submit");
    await page.waitForSelector('#live-state[data-state="submitted"]');
    assert.match(await page.textContent("#live-state"), /已提交/);
    assert.equal(await page.locator("#pages li button").count(), 0, "no changes while in review");
  });

  const review = await run.newPage();
  await run.step("a reviewer finds it in the queue and sends it back, and the clerk sees why", async () => {
    await login(run, review, reviewer, reviewerPassword, "/search");
    await review.goto(run.url("/review"));
    const row = review.locator(`#review-queue tr.live[data-number="${NUMBER}"]`);
    assert.match(await row.textContent(), /西溪街道/);
    await Promise.all([review.waitForURL(/\/review\/SC-2026-0001$/), row.locator("a").click()]);
    assert.equal(await review.locator("#review-pages li").count(), 3);
    await review.fill('#send-back input[name="reason"]', "第2页模糊，请重新扫描");
    await Promise.all([review.waitForEvent("load"), review.click('#send-back button[type="submit"]')]);
    await review.waitForSelector('#review-state[data-state="returned"]');
    await page.reload();
    await page.waitForSelector('#live-state[data-state="returned"]');
    assert.match(await page.textContent("#return-reason"), /第2页模糊，请重新扫描/);
    await run.screenshot(page, "returned");
  });
});
