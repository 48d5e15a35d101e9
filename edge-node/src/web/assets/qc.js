// The QC screen: one sampled page large with its neighbours in scan order,
// a key per verdict. A verdict shows the next unchecked page at once (its
// image is preloaded) and is saved in the background; a failed save puts
// the page back and says why. The time from each key press to the next
// page on screen is kept in window.qcTimings (milliseconds).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("qc");
  const dataEl = document.getElementById("qc-data");
  if (!root || !dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const api = root.dataset.batchUrl;
  const sample = data.sample;
  const t = dangan.t;
  const image = document.getElementById("qc-image");
  const prev = document.getElementById("qc-prev");
  const next = document.getElementById("qc-next");
  const labels = Object.fromEntries(data.defects);
  labels.pass = t("合格", "pass");
  window.qcTimings = [];

  const viewUrl = (page) => `${api}/pages/${page}/view`;
  const thumbUrl = (page) => `${api}/pages/${page}/thumbnail`;
  const preloaded = new Map();
  function preload(page) {
    if (!page || preloaded.has(page)) return;
    const img = new Image();
    img.src = viewUrl(page);
    // Decoded ahead too, so showing it is a paint, not a decode.
    img.decode().catch(() => {});
    preloaded.set(page, img);
  }

  let index = sample.findIndex((s) => !s.verdict);
  if (index < 0) index = 0;
  let pending = null; // { started } while a key's page is being shown

  function show() {
    const current = sample[index];
    const page = current.page;
    image.src = viewUrl(page);
    const before = page - 1, after = page + 1;
    prev.style.visibility = before >= 1 ? "visible" : "hidden";
    next.style.visibility = after <= data.pages ? "visible" : "hidden";
    if (before >= 1) prev.src = thumbUrl(before);
    if (after <= data.pages) next.src = thumbUrl(after);
    document.getElementById("qc-prev-label").textContent = before >= 1 ? t(`第 ${before} 页`, `page ${before}`) : "";
    document.getElementById("qc-next-label").textContent = after <= data.pages ? t(`第 ${after} 页`, `page ${after}`) : "";
    document.getElementById("qc-label").textContent = t(`第 ${page} 页（共 ${data.pages} 页）`, `page ${page} of ${data.pages}`);
    document.getElementById("qc-position").textContent = t(`抽检 ${index + 1} / ${sample.length}`, `sample ${index + 1} of ${sample.length}`);
    const checked = sample.filter((s) => s.verdict).length;
    document.getElementById("qc-progress").textContent = t(`已检 ${checked}`, `checked ${checked}`);
    const verdict = document.getElementById("qc-verdict");
    verdict.textContent = current.verdict ? labels[current.verdict] || current.verdict : t("未检", "not checked");
    verdict.className = current.verdict ? (current.verdict === "pass" ? "ok" : "warn") : "muted";
    root.dataset.page = String(page);
    root.dataset.verdict = current.verdict || "";
    // The next sampled pages are fetched ahead, so a key shows them at once.
    for (let k = 1; k <= 3; k++) preload(sample[index + k]?.page);
  }

  // A page counts as shown once its image is decoded and on screen.
  image.addEventListener("load", () => {
    if (!pending) return;
    const started = pending.started;
    pending = null;
    const done = () => {
      const elapsed = performance.now() - started;
      window.qcTimings.push(elapsed);
      root.dataset.lastKeyMs = elapsed.toFixed(1);
    };
    if (image.decode) image.decode().then(done, done); else done();
  });

  function move(step, started) {
    const target = index + step;
    if (target < 0 || target >= sample.length) return;
    index = target;
    pending = { started };
    show();
  }

  async function record(verdict, started) {
    const current = sample[index];
    const previous = current.verdict;
    current.verdict = verdict;
    const next = sample.findIndex((s, i) => i > index && !s.verdict);
    if (next >= 0) {
      index = next;
      pending = { started };
      show();
    } else {
      show();
      dangan.say("qc-message", t("所有抽检页已检，按 F 完成本轮", "every sampled page is checked: press F to finish"));
    }
    const saving = dangan.api("PUT", `${api}/qc/pages/${current.page}`, { verdict });
    inFlight.add(saving);
    try {
      await saving;
    } catch (err) {
      current.verdict = previous;
      dangan.say("qc-message", t(`第 ${current.page} 页未保存：`, `page ${current.page} not saved: `) + err.message, true);
      show();
    } finally {
      inFlight.delete(saving);
    }
  }

  // Verdicts still being saved: finishing waits for them (a round whose
  // last verdict has not reached the server cannot finish).
  const inFlight = new Set();

  async function finish() {
    await Promise.allSettled([...inFlight]);
    const unchecked = sample.filter((s) => !s.verdict).length;
    if (unchecked > 0) {
      dangan.say("qc-message", t(`还有 ${unchecked} 页未检`, `${unchecked} sampled pages are not checked yet`), true);
      return;
    }
    try {
      const outcome = await dangan.api("POST", `${api}/qc/finish`);
      const passed = outcome.state === "accepted";
      dangan.say("qc-message", passed ? t("本轮通过，批次已通过质检", "round passed: the batch is accepted")
        : t("本轮不通过，批次转入返工", "round failed: the batch goes to rework"), !passed);
      setTimeout(() => location.reload(), 300);
    } catch (err) {
      dangan.say("qc-message", err.message, true);
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
    const started = performance.now();
    const key = event.key;
    if (key === "Enter" || key === " " || key === "p" || key === "P") {
      event.preventDefault();
      record("pass", started);
    } else if (/^[1-9]$/.test(key) && Number(key) <= data.defects.length) {
      event.preventDefault();
      record(data.defects[Number(key) - 1][0], started);
    } else if (key === "ArrowRight" || key === "n" || key === "N") {
      event.preventDefault();
      move(1, started);
    } else if (key === "ArrowLeft" || key === "b" || key === "B") {
      event.preventDefault();
      move(-1, started);
    } else if (key === "f" || key === "F") {
      event.preventDefault();
      finish();
    }
  });
  document.getElementById("qc-finish").addEventListener("click", finish);

  show();
});
