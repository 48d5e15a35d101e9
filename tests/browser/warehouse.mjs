// The warehouse's keyboard-wedge screens in a real browser. A handheld
// barcode scanner in keyboard mode types the code and Enter into the
// focused input; page.keyboard.type + Enter is exactly that. Started by
// edge-node/tests/it/warehouse.rs, which sets up room K01 (shelves
// K01-L01-S1 of capacity 2, K01-L01-S2, K01-L01-J1-S3), boxes BOX-0001,
// BOX-0002 (not shelved) and BOX-0003 (on S3), volume VOL-0001 in no box,
// and passes:
//   DANGAN_BASE_URL, DANGAN_SCREENSHOTS (see harness.mjs)
//   DANGAN_OPERATOR   "user:password"
import assert from "node:assert/strict";
import { main } from "./harness.mjs";

const [operator, password] = process.env.DANGAN_OPERATOR.split(":");

// What a keyboard-wedge scanner does: the code's keys, then Enter.
async function scan(page, code) {
  await page.keyboard.type(code, { delay: 5 });
  await page.keyboard.press("Enter");
}

main("warehouse", async (run) => {
  const op = await run.newPage();

  await run.step("the operator logs in and opens the shelving screen from the warehouse", async () => {
    await op.goto(run.url("/"));
    await op.fill('input[name="username"]', operator);
    await op.fill('input[name="password"]', password);
    await Promise.all([op.waitForURL(run.url("/")), op.press('input[name="password"]', "Enter")]);
    await Promise.all([op.waitForURL(/\/warehouse$/), op.click('header a[href="/warehouse"]')]);
    assert.equal((await op.textContent("h1")).trim(), "库房管理");
    // The tree down to the shelves, and boxes not on a shelf yet; boxes on
    // shelves are on their shelf's page.
    assert.equal(await op.locator('#locations tr[data-code="K01-L01-S1"]').count(), 1);
    assert.equal(await op.locator('#locations tr[data-code="BOX-0001"]').count(), 1);
    assert.equal(await op.locator('#locations tr[data-code="BOX-0003"]').count(), 0);
    await Promise.all([op.waitForURL(/\/warehouse\/shelve$/), op.click('nav.subnav a[href="/warehouse/shelve"]')]);
    // The scan input has the focus: the scanner can type straight away.
    assert.equal(await op.evaluate(() => document.activeElement.id), "scan");
    assert.match(await op.textContent("#prompt"), /请扫描盒标签或卷标签/);
  });

  await run.step("a shelf label first is refused with a message, and nothing changes", async () => {
    await scan(op, "K01-L01-S1");
    await op.waitForFunction(() => document.querySelector("#scan-status").textContent.includes("不是盒标签或卷标签"));
    assert.ok(await op.$eval("#scan-status", (el) => el.classList.contains("error")));
  });

  await run.step("box label then shelf label: the box is shelved (twice)", async () => {
    for (const [n, box] of ["BOX-0001", "box-0002"].entries()) {
      await scan(op, box);
      await op.waitForFunction(() => document.querySelector("#prompt").textContent.includes("层位"));
      await scan(op, "K01-L01-S1");
      await op.waitForFunction((count) => document.querySelectorAll("#shelved li").length === count, n + 1);
      assert.match(await op.textContent("#scan-status"), new RegExp(`${box.toUpperCase()} 已放入 K01-L01-S1`));
    }
    await run.screenshot(op, "shelving");
  });

  await run.step("a third box on the full shelf is refused in Chinese", async () => {
    await scan(op, "BOX-0003");
    await op.waitForFunction(() => document.querySelector("#prompt").textContent.includes("层位"));
    await scan(op, "K01-L01-S1");
    await op.waitForFunction(() => document.querySelector("#scan-status").classList.contains("error"));
    assert.match(await op.textContent("#scan-status"), /已满/);
    assert.equal(await op.locator("#shelved li").count(), 2);
  });

  await run.step("volume label then box label: the volume goes into the box", async () => {
    await scan(op, "VOL-0001");
    await op.waitForFunction(() => document.querySelector("#prompt").textContent.includes("请扫描盒标签"));
    await scan(op, "BOX-0001");
    await op.waitForFunction(() => document.querySelector("#shelved li").dataset.item === "VOL-0001");
    assert.match(await op.textContent("#scan-status"), /VOL-0001 已放入 BOX-0001/);
  });

  await run.step("the room grid shows the shelf full", async () => {
    await op.goto(run.url("/warehouse/rooms/K01"));
    const cell = op.locator('td.cell[data-shelf="K01-L01-S1"]');
    assert.equal(await cell.getAttribute("class"), "cell full");
    assert.match(await cell.textContent(), /2\s*\/\s*2/);
    await run.screenshot(op, "room-grid");
  });

  await run.step("an inventory check of the room by scanning finds what is out of place", async () => {
    await op.goto(run.url("/warehouse/checks"));
    await op.fill('#new-check input[name="root"]', "K01");
    await Promise.all([op.waitForURL(/\/warehouse\/checks\/\d+$/), op.press('#new-check input[name="root"]', "Enter")]);
    const check = Number(op.url().split("/").pop());
    run.value("check", check);
    assert.equal(await op.evaluate(() => document.activeElement.id), "scan");
    // On S1 only BOX-0001 (with VOL-0001 in it) is found; BOX-0002 turns up
    // on S2, with an unknown box; BOX-0003 (on S3) is not found at all.
    for (const code of ["K01-L01-S1", "BOX-0001", "VOL-0001", "K01-L01-S2", "BOX-0002"]) {
      await scan(op, code);
    }
    await op.waitForFunction(() => document.querySelector("#scan-status").textContent.includes("实在"));
    assert.match(await op.textContent("#scan-status"), /BOX-0002 应在 K01-L01-S1，实在 K01-L01-S2/);
    await scan(op, "BOX-4242");
    await op.waitForFunction(() => document.querySelector("#scan-status").textContent.includes("没有此编号"));
    await op.reload();
    const kinds = await op.$$eval("#discrepancies tbody tr", (rows) => rows.map((r) => `${r.dataset.kind}:${r.dataset.item}`).sort());
    assert.deepEqual(kinds, ["misplaced:BOX-0002", "missing:BOX-0003", "unexpected:BOX-4242"]);
    assert.equal((await op.textContent("#expected")).trim(), "4");
    assert.equal((await op.textContent("#found")).trim(), "2");
    await run.screenshot(op, "inventory-check");
  });
});
