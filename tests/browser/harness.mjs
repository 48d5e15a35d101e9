// The browser test harness shared by every Dangan UI test: headless Debian
// Chromium driven by playwright-core, steps that stop at the first failure
// with a screenshot, named screenshots kept as artifacts, and timings
// reported as one JSON line for the Rust test that ran us.
//
// Environment:
//   DANGAN_CHROMIUM     the browser (default /usr/bin/chromium)
//   DANGAN_SCREENSHOTS  where screenshots go (created)
//   DANGAN_BASE_URL     the server under test
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

// Flags this sandboxed, offline machine needs: no sandbox (root), no GPU,
// and none of the browser's own network chatter.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export class Run {
  constructor(name) {
    this.name = name;
    this.base = process.env.DANGAN_BASE_URL;
    if (!this.base) throw new Error("DANGAN_BASE_URL is not set");
    this.shots = process.env.DANGAN_SCREENSHOTS || join(process.cwd(), "screenshots", name);
    mkdirSync(this.shots, { recursive: true });
    this.timings = {};
    this.values = {};
    this.steps = [];
    this.pages = [];
  }

  async launch() {
    this.browser = await chromium.launch({
      executablePath: process.env.DANGAN_CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: FLAGS,
    });
    return this;
  }

  // A fresh browser profile (cookies of its own): one per user.
  async newPage() {
    const context = await this.browser.newContext({ viewport: { width: 1440, height: 900 }, locale: "zh-CN" });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on("pageerror", (err) => this.log(`page error: ${err.message}`));
    page.on("console", (msg) => { if (msg.type() === "error") this.log(`console: ${msg.text()}`); });
    this.pages.push(page);
    return page;
  }

  url(path) {
    return new URL(path, this.base).toString();
  }

  log(text) {
    process.stderr.write(`[${this.name}] ${text}\n`);
  }

  // Runs one named step; on failure saves a screenshot of every open page.
  async step(name, fn) {
    const started = Date.now();
    this.log(`step: ${name}`);
    try {
      await fn();
      this.steps.push({ name, ms: Date.now() - started });
    } catch (err) {
      for (const [i, page] of this.pages.entries()) {
        await page.screenshot({ path: join(this.shots, `failed-${i}.png`), fullPage: true }).catch(() => {});
      }
      err.message = `step "${name}" failed: ${err.message}`;
      throw err;
    }
  }

  async screenshot(page, name) {
    const path = join(this.shots, `${name}.png`);
    await page.screenshot({ path, fullPage: false });
    this.log(`screenshot: ${path}`);
  }

  timing(name, values) {
    this.timings[name] = values;
  }

  // A value the Rust side checks afterwards (an id made in the browser).
  value(name, value) {
    this.values[name] = value;
  }

  async close(ok) {
    await this.browser?.close();
    process.stdout.write(`DANGAN-RESULT ${JSON.stringify({ run: this.name, ok, steps: this.steps, timings: this.timings, values: this.values, screenshots: this.shots })}\n`);
  }
}

// Runs `scenario(run)` and exits non-zero on the first failure.
export async function main(name, scenario) {
  const run = new Run(name);
  let ok = false;
  try {
    await run.launch();
    await scenario(run);
    ok = true;
  } catch (err) {
    process.stderr.write(`${err.stack || err}\n`);
  } finally {
    await run.close(ok);
  }
  process.exit(ok ? 0 : 1);
}

export function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return {
    count: sorted.length,
    median_ms: Number(at(0.5).toFixed(1)),
    p95_ms: Number(at(0.95).toFixed(1)),
    max_ms: Number(sorted[sorted.length - 1].toFixed(1)),
  };
}
