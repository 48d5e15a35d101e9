// The hub web UI in a real browser: the system administrator reconciles,
// adds a district, a reviewer and a grant, publishes a dictionary version,
// and queries the audit trail — with the browser only. Started by
// tests/tests/hub_web.rs, which starts `dangan-hub serve` with a short
// stale threshold and a node of 330106 that has just been in contact, and
// passes:
//   DANGAN_BASE_URL, DANGAN_SCREENSHOTS (see harness.mjs)
//   DANGAN_ADMIN           "user:password" of the system administrator
//   DANGAN_STALE_SECONDS   the stale threshold the hub was started with
import assert from "node:assert/strict";
import { main } from "./harness.mjs";

const [admin, adminPassword] = process.env.DANGAN_ADMIN.split(":");
const staleSeconds = Number(process.env.DANGAN_STALE_SECONDS);

async function login(run, page, user, password, next = "/") {
  await page.goto(run.url(next));
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL(run.url(next)), page.press('input[name="password"]', "Enter")]);
}

main("hub", async (run) => {
  const page = await run.newPage();

  await run.step("a wrong password is refused on the login page", async () => {
    await page.goto(run.url("/reconcile"));
    assert.match(page.url(), /\/login\?next=%2Freconcile/);
    await page.fill('input[name="username"]', admin);
    await page.fill('input[name="password"]', "not-the-password");
    await Promise.all([page.waitForURL(/error=1/), page.press('input[name="password"]', "Enter")]);
    assert.match(await page.textContent("p.error"), /用户名或密码错误/);
  });

  await run.step("the administrator logs in and lands on the reconciliation", async () => {
    await page.fill('input[name="username"]', admin);
    await page.fill('input[name="password"]', adminPassword);
    await Promise.all([page.waitForURL(run.url("/reconcile")), page.press('input[name="password"]', "Enter")]);
    const row = page.locator('tr.district[data-district="330106"]');
    await row.waitFor();
    assert.equal(await row.getAttribute("data-stale"), "false", "the district was just in contact");
  });

  await run.step("the district goes stale without a page reload", async () => {
    await page.evaluate(() => { window.sameDocument = true; });
    const row = 'tr.district[data-district="330106"][data-stale="true"]';
    await page.waitForSelector(row, { timeout: (staleSeconds + 15) * 1000 });
    assert.equal(await page.evaluate(() => window.sameDocument), true, "the page was not reloaded");
    assert.match(await page.textContent(row), /失联/);
    await run.screenshot(page, "reconcile");
  });

  await run.step("the district's drill-down lists its node", async () => {
    await Promise.all([page.waitForURL(/\/reconcile\/330106$/), page.click('a[href="/reconcile/330106"]')]);
    assert.match(await page.textContent("main"), /330106-1/);
  });

  await run.step("a new district is added to the organisation tree", async () => {
    await page.goto(run.url("/admin/orgs"));
    await page.fill('#org-add input[name="code"]', "330108");
    await page.fill('#org-add input[name="name"]', "滨江区");
    await page.fill('#org-add input[name="parent"]', "330100");
    await Promise.all([page.waitForEvent("load"), page.click('#org-add button[type="submit"]')]);
    await page.waitForSelector('tr[data-org="330108"]');
    assert.match(await page.textContent('tr[data-org="330108"]'), /滨江区/);
  });

  await run.step("a bad organisation code is refused with the reason", async () => {
    await page.fill('#org-add input[name="code"]', "330199001");
    await page.fill('#org-add input[name="name"]', "不存在的街道");
    await page.fill('#org-add input[name="parent"]', "339999");
    await page.click('#org-add button[type="submit"]');
    await page.waitForSelector("#org-add .form-status.error");
    assert.ok((await page.textContent("#org-add .form-status")).length > 0);
  });

  await run.step("a reviewer of 滨江区 is added, and granted 西湖区 until a date", async () => {
    await page.goto(run.url("/admin/users"));
    await page.fill('#user-add input[name="username"]', "li");
    await page.fill('#user-add input[name="display_name"]', "李四");
    await page.selectOption('#user-add select[name="role"]', "reviewer");
    await page.fill('#user-add input[name="org"]', "330108");
    await page.fill('#user-add input[name="password"]', "li-password-1");
    await Promise.all([page.waitForEvent("load"), page.click('#user-add button[type="submit"]')]);
    await page.waitForSelector('tr[data-user="li"]');
    assert.match(await page.textContent('tr[data-user="li"]'), /复核员/);
    await page.fill('#grant-add input[name="username"]', "li");
    await page.fill('#grant-add input[name="org"]', "330106");
    await page.fill('#grant-add input[name="until"]', "2099-12-31");
    await page.fill('#grant-add input[name="reason"]', "跨区复核");
    await Promise.all([page.waitForEvent("load"), page.click('#grant-add button[type="submit"]')]);
    await page.waitForSelector("#grants tbody tr");
    assert.match(await page.textContent("#grants"), /跨区复核/);
    await run.screenshot(page, "users");
  });

  await run.step("a defect type is renamed as a new dictionary version", async () => {
    await page.goto(run.url("/admin/dictionaries"));
    const section = 'section[data-dictionary="defects"]';
    assert.match(await page.textContent(`${section} h2`), /版本 1/);
    await page.fill(`${section} tr[data-code="skew"] input[name="zh"]`, "倾斜");
    await Promise.all([page.waitForEvent("load"), page.click(`${section} button[type="submit"]`)]);
    await page.waitForSelector(`${section} h2`);
    assert.match(await page.textContent(`${section} h2`), /版本 2/);
  });

  await run.step("the interface switches to English and back", async () => {
    await Promise.all([page.waitForEvent("load"), page.click("#lang-switch")]);
    assert.match(await page.textContent("h1"), /Dictionaries and templates/);
    await Promise.all([page.waitForEvent("load"), page.click("#lang-switch")]);
    assert.match(await page.textContent("h1"), /字典与模板/);
  });

  await run.step("the audit trail shows what the administrator did, and exports CSV", async () => {
    await page.goto(run.url("/audit"));
    await page.fill('#audit-query input[name="action"]', "user.*");
    await Promise.all([page.waitForURL(/action=user/), page.click('#audit-query button[type="submit"]')]);
    const rows = await page.locator("#audit tbody tr").count();
    assert.ok(rows >= 1, "user changes are listed");
    assert.match(await page.textContent("#audit"), /user\.add/);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#audit-csv")]);
    const csv = await (await download.createReadStream()).toArray();
    const text = Buffer.concat(csv).toString("utf8");
    assert.match(text, /user\.add/);
    await run.screenshot(page, "audit");
  });

  await run.step("logging out ends the session", async () => {
    await Promise.all([page.waitForURL(/\/login/), page.click('form[action="/logout"] button')]);
    await page.goto(run.url("/audit"));
    assert.match(page.url(), /\/login\?next=/);
  });

  // The reviewer can log in but sees no administration.
  const reviewer = await run.newPage();
  await run.step("a reviewer may not open the administration pages", async () => {
    await login(run, reviewer, "li", "li-password-1", "/search");
    const response = await reviewer.goto(run.url("/admin/users"));
    assert.equal(response.status(), 403);
    await reviewer.goto(run.url("/"));
    assert.match(reviewer.url(), /\/search$/, "a reviewer starts at the search");
    assert.equal(await reviewer.locator('a[href="/admin/users"]').count(), 0);
  });
});
