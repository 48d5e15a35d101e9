// The clerk's upload page (事中扫描): pick or scan in the business number,
// drop or select the scanned pages (or the scanner's folder), watch each
// upload, fix the order, hand the file in for review.
//
// Uploads go over tus (tus-js-client, served by the hub) one page at a
// time, in the order the pages were added, so that they land in that order.
// Every queued page is kept in IndexedDB until the hub has it: after a
// dropped connection tus-js-client retries from the offset the hub holds,
// and after a reload (or a crash of the tab) the page picks the queue up
// again and resumes each upload where it stopped.
"use strict";

(() => {
  const { api, t } = hub;
  const $ = (selector) => document.querySelector(selector);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const RETRIES = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  let number = "";
  let running = false;

  // ---- The queue in IndexedDB: {id, number, file} in the order added.
  const db = new Promise((resolve, reject) => {
    const open = indexedDB.open("dangan-upload-queue", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("pages", { keyPath: "id", autoIncrement: true });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  async function store(mode, work) {
    const handle = await db;
    return new Promise((resolve, reject) => {
      const tx = handle.transaction("pages", mode);
      const request = work(tx.objectStore("pages"));
      tx.oncomplete = () => resolve(request && request.result);
      tx.onerror = () => reject(tx.error);
    });
  }
  const queued = () => store("readonly", (s) => s.getAll());
  const enqueue = (file) => store("readwrite", (s) => s.add({ number, file }));
  const dequeue = (id) => store("readwrite", (s) => s.delete(id));

  // ---- The list of queued uploads with their progress.
  const items = new Map(); // queue id -> {row, bar, status}
  function row(entry) {
    let item = items.get(entry.id);
    if (item) return item;
    const li = document.createElement("li");
    li.className = "upload";
    li.dataset.name = entry.file.name;
    const img = document.createElement("img");
    img.src = URL.createObjectURL(entry.file);
    img.alt = entry.file.name;
    const name = document.createElement("span");
    name.textContent = `${entry.file.name} (${entry.number})`;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const status = document.createElement("span");
    status.className = "status muted";
    status.textContent = t("排队中", "queued");
    li.append(img, name, bar, status);
    $("#queue").append(li);
    item = { li, bar, status };
    items.set(entry.id, item);
    return item;
  }

  function setStatus(item, text, state) {
    item.status.textContent = text;
    item.li.dataset.state = state;
  }

  // Uploads one queued page; resolves when the hub has it.
  function send(entry) {
    const item = row(entry);
    return new Promise((resolve, reject) => {
      const upload = new tus.Upload(entry.file, {
        endpoint: "/api/v1/uploads",
        headers: { "X-CSRF-Token": csrf },
        metadata: { business_number: entry.number, filename: entry.file.name, filetype: entry.file.type },
        chunkSize: 256 * 1024,
        retryDelays: RETRIES,
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onProgress: (sent, total) => {
          item.bar.value = total ? Math.floor((sent / total) * 100) : 0;
          setStatus(item, t("上传中", "uploading"), "uploading");
        },
        onShouldRetry: (err, attempt) => {
          const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          const retry = status === 0 || status === 409 || status === 423 || status >= 500;
          if (retry) setStatus(item, t(`连接中断，正在重试（第 ${attempt + 1} 次）`, `connection lost, retrying (${attempt + 1})`), "retrying");
          return retry;
        },
        onSuccess: () => {
          item.bar.value = 100;
          setStatus(item, t("已上传", "uploaded"), "done");
          resolve();
        },
        onError: (err) => {
          const body = err.originalResponse ? err.originalResponse.getBody() : "";
          let message = String(err.message || err);
          try { message = JSON.parse(body).message || message; } catch (_) { /* not JSON */ }
          setStatus(item, t(`失败：${message}`, `failed: ${message}`), "failed");
          reject(new Error(message));
        },
      });
      upload.findPreviousUploads().then((previous) => {
        if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      }, reject);
    });
  }

  // Sends the queue in order; a page that fails for good stays listed with
  // its reason and leaves the queue (the clerk adds it again if needed).
  async function drain() {
    if (running) return;
    running = true;
    try {
      for (;;) {
        const next = (await queued())[0];
        if (!next) break;
        try {
          await send(next);
        } catch (_) {
          // Reported on its row.
        }
        await dequeue(next.id);
        if (next.number === number) await refresh();
      }
    } finally {
      running = false;
    }
  }

  async function add(files) {
    if (!number) {
      $("#upload-message").textContent = t("请先输入业务编号。", "Enter the business number first.");
      return;
    }
    const images = Array.from(files).filter((f) => /^image\//.test(f.type) || /\.(jpe?g|png|tiff?)$/i.test(f.name));
    images.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    for (const file of images) {
      const id = await enqueue(file);
      row({ id, number, file });
    }
    drain();
  }

  // ---- The business file as the hub has it.
  const STATES = {
    open: t("上传中（未提交）", "open"),
    submitted: t("已提交，待复核", "submitted for review"),
    returned: t("已退回", "returned"),
    approved: t("已通过复核", "approved"),
    archived: t("已月结归档", "archived"),
  };

  async function refresh() {
    const view = $("#live-file");
    if (!number) { view.hidden = true; return; }
    view.hidden = false;
    let file = null;
    try {
      file = await api("GET", `/api/v1/live/${encodeURIComponent(number)}`);
    } catch (_) {
      file = null;
    }
    $("#live-number").textContent = number;
    const pages = $("#pages");
    pages.replaceChildren();
    if (!file) {
      $("#live-state").textContent = t("新业务件：上传第一页后建立", "new: created with its first page");
      $("#live-state").dataset.state = "new";
      $("#return-reason").hidden = true;
      $("#submit").disabled = true;
      return;
    }
    $("#live-state").textContent = STATES[file.state] || file.state;
    $("#live-state").dataset.state = file.state;
    const reason = $("#return-reason");
    reason.hidden = !(file.state === "returned" && file.return_reason);
    reason.textContent = file.return_reason ? t(`退回原因：${file.return_reason}`, `Sent back: ${file.return_reason}`) : "";
    const editable = file.state === "open" || file.state === "returned";
    $("#submit").disabled = !editable || file.pages.length === 0;
    file.pages.forEach((page, index) => {
      const li = document.createElement("li");
      li.className = "thumb page-item";
      li.dataset.page = page.id;
      const img = document.createElement("img");
      img.src = page.thumbnail;
      img.alt = page.filename || `${index + 1}`;
      const label = document.createElement("span");
      label.textContent = `${index + 1}. ${page.filename || ""}`;
      li.append(img, label);
      if (editable) {
        const order = file.pages.map((p) => p.id);
        const button = (text, title, action) => {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = text;
          b.title = title;
          b.addEventListener("click", () => action().then(refresh, (err) => { $("#upload-message").textContent = err.message; }));
          return b;
        };
        const move = (to) => () => {
          const moved = order.slice();
          moved.splice(index, 1);
          moved.splice(to, 0, page.id);
          return api("PUT", `/api/v1/live/${encodeURIComponent(number)}/order`, { pages: moved });
        };
        if (index > 0) li.append(button("↑", t("上移", "move up"), move(index - 1)));
        if (index < order.length - 1) li.append(button("↓", t("下移", "move down"), move(index + 1)));
        li.append(button("✕", t("删除此页", "remove this page"), () =>
          api("DELETE", `/api/v1/live/${encodeURIComponent(number)}/pages/${page.id}`)));
      }
      pages.append(li);
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const form = $("#number-form");
    const input = $("#business-number");
    // A handheld scanner types the number and Enter, like a person.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      number = input.value.trim();
      const url = new URL(location.href);
      url.searchParams.set("number", number);
      history.replaceState(null, "", url);
      $("#upload-message").textContent = "";
      refresh();
    });
    number = new URL(location.href).searchParams.get("number") || "";
    input.value = number;
    $("#files").addEventListener("change", (event) => { add(event.target.files); event.target.value = ""; });
    $("#folder").addEventListener("change", (event) => { add(event.target.files); event.target.value = ""; });
    const zone = $("#drop-zone");
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => { event.preventDefault(); zone.classList.remove("over"); add(event.dataTransfer.files); });
    $("#submit").addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/live/${encodeURIComponent(number)}/submit`);
        $("#upload-message").textContent = t("已提交复核。", "Handed in for review.");
      } catch (err) {
        $("#upload-message").textContent = err.message;
      }
      refresh();
    });
    // Pages left from before a reload or a crash: shown and resumed.
    for (const entry of await queued()) row(entry);
    await refresh();
    drain();
  });
})();
