// Shared by every page: the CSRF token, a JSON API helper, and the batch
// page's uploads and rescans.
"use strict";

const dangan = (() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const lang = meta("lang") || "zh";
  const t = (zh, en) => (lang === "en" ? en : zh);

  // Calls the JSON API with the session cookie and the CSRF token; resolves
  // to the parsed body, rejects with the API's error message.
  async function api(method, url, body, contentType) {
    // Errors come back in the page's language where the API offers both.
    const headers = { "X-CSRF-Token": meta("csrf-token"), "Accept-Language": lang };
    let payload = body;
    if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else if (contentType) {
      headers["Content-Type"] = contentType;
    }
    const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = text; }
    if (!response.ok) {
      const message = parsed && parsed.error ? parsed.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return parsed;
  }

  function say(id, text, isError) {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  return { api, t, say, lang };
})();

// The batch page: upload scanned files into an open batch, one at a time.
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("upload-files");
  const start = document.getElementById("upload-start");
  if (input && start) {
    start.addEventListener("click", async () => {
      const files = Array.from(input.files || []);
      if (!files.length) return;
      const batch = input.dataset.batch;
      start.disabled = true;
      let pages = 0, quarantined = 0;
      for (const [i, file] of files.entries()) {
        dangan.say("upload-status", `${i + 1} / ${files.length} ${file.name}`);
        try {
          const url = `/api/v1/batches/${encodeURIComponent(batch)}/pages?filename=${encodeURIComponent(file.name)}`;
          const report = await dangan.api("POST", url, file, "application/octet-stream");
          pages += report.pages;
          quarantined += report.quarantined;
        } catch (err) {
          dangan.say("upload-status", `${file.name}: ${err.message}`, true);
          start.disabled = false;
          return;
        }
      }
      dangan.say("upload-status", dangan.t(`已上传 ${files.length} 个文件：${pages} 页，${quarantined} 个被隔离`,
        `uploaded ${files.length} files: ${pages} pages, ${quarantined} quarantined`));
      location.reload();
    });
  }
  // Rework: replace a defective page with its rescan.
  for (const rescan of document.querySelectorAll("input.rescan-file")) {
    rescan.addEventListener("change", async () => {
      const file = rescan.files && rescan.files[0];
      if (!file) return;
      const { batch, page } = rescan.dataset;
      const reason = dangan.t("质检返工重扫", "rescanned in rework");
      const url = `/api/v1/batches/${encodeURIComponent(batch)}/pages/${page}/image?reason=${encodeURIComponent(reason)}&filename=${encodeURIComponent(file.name)}`;
      try {
        await dangan.api("PUT", url, file, "application/octet-stream");
        dangan.say("rescan-status", dangan.t(`第 ${page} 页已替换`, `page ${page} replaced`));
        rescan.closest("li")?.classList.add("done");
      } catch (err) {
        dangan.say("rescan-status", `${page}: ${err.message}`, true);
      }
    });
  }
});
