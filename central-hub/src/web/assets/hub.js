// The hub's pages: forms and buttons that call the JSON API (with the
// session cookie and the CSRF token), and tables that refresh themselves.
"use strict";

const hub = (() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const lang = meta("lang") || "zh";
  const t = (zh, en) => (lang === "en" ? en : zh);

  // Resolves to the parsed body; rejects with the API's message.
  async function api(method, url, body) {
    const headers = { "X-CSRF-Token": meta("csrf-token") };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = text; }
    if (!response.ok) {
      const message = (parsed && (parsed.message || (parsed.error && parsed.error.message)))
        || `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return parsed;
  }

  // A form's fields as JSON: empty fields left out, checkboxes as booleans.
  function fields(form) {
    if (form.dataset.shape === "entries") {
      return {
        entries: Array.from(form.querySelectorAll("tr.entry")).map((row) => ({
          code: row.dataset.code,
          zh: row.querySelector('[name="zh"]').value,
          en: row.querySelector('[name="en"]').value,
          active: row.querySelector('[name="active"]').checked,
        })),
      };
    }
    const body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") body[el.name] = el.checked;
      else if (el.value.trim() !== "") body[el.name] = el.value.trim();
    }
    return body;
  }

  return { api, t, fields };
})();

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.api")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = form.querySelector(".form-status");
      const submit = form.querySelector('[type="submit"]');
      if (submit) submit.disabled = true;
      try {
        await hub.api(form.dataset.method, form.dataset.url, hub.fields(form));
        if (status) { status.textContent = hub.t("已保存", "saved"); status.classList.remove("error"); }
        location.reload();
      } catch (err) {
        if (status) { status.textContent = err.message; status.classList.add("error"); }
        if (submit) submit.disabled = false;
      }
    });
  }
  for (const button of document.querySelectorAll("button.api")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
        await hub.api(button.dataset.method, button.dataset.url, body);
        location.reload();
      } catch (err) {
        button.disabled = false;
        button.title = err.message;
        button.classList.add("error");
        alert(err.message);
      }
    });
  }
  // Tables that refresh without a page reload (the reconciliation).
  for (const box of document.querySelectorAll("[data-refresh]")) {
    const every = Number(box.dataset.every || 10) * 1000;
    const stamp = document.getElementById("reconcile-updated");
    const refresh = async () => {
      try {
        const response = await fetch(box.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) {
          box.innerHTML = await response.text();
          if (stamp) stamp.textContent = hub.t("更新于 ", "updated ") + new Date().toLocaleTimeString();
          box.dispatchEvent(new CustomEvent("refreshed"));
        } else if (stamp) {
          stamp.textContent = hub.t("刷新失败：", "refresh failed: ") + response.status;
        }
      } catch (err) {
        if (stamp) stamp.textContent = hub.t("刷新失败：", "refresh failed: ") + err.message;
      }
    };
    setInterval(refresh, every);
  }
});
