// The exception queue: regroup pages by keyboard or drag and drop, fill in
// a business file's metadata (著录) with the person id's checksum checked
// as you type, and check off its documents. Every change goes to the JSON
// API; the page then reloads, so what is shown is what is stored.
"use strict";

// GB 11643 citizen identity number: 17 digits, a check character (0-9 or X),
// a real birth date.
function checkPersonId(text) {
  const id = text.trim().toUpperCase();
  if (!id) return { ok: null };
  if (!/^\d{17}[\dX]$/.test(id)) return { ok: false, why: "format" };
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(id[i]) * weights[i];
  const expected = "10X98765432"[sum % 11];
  if (id[17] !== expected) return { ok: false, why: "checksum", expected };
  const y = Number(id.slice(6, 10)), m = Number(id.slice(10, 12)), d = Number(id.slice(12, 14));
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) {
    return { ok: false, why: "date" };
  }
  return { ok: true };
}

document.addEventListener("DOMContentLoaded", () => {
  const t = dangan.t;
  const grouping = document.getElementById("grouping");
  const KEY = "dangan.focus";

  async function edit(body) {
    dangan.say("grouping-status", t("保存中…", "saving…"));
    try {
      await dangan.api("POST", `${grouping.dataset.api}/grouping`, body);
      location.reload();
    } catch (err) {
      dangan.say("grouping-status", err.message, true);
    }
  }

  if (grouping) {
    const pages = () => Array.from(grouping.querySelectorAll(".page"));
    const editable = grouping.dataset.editable === "true";
    const filePages = (file) =>
      Array.from(grouping.querySelectorAll(`.strip[data-file="${file}"] .page`)).map((p) => Number(p.dataset.page));
    const files = () => Array.from(grouping.querySelectorAll(".file-row")).map((r) => Number(r.dataset.file));

    // Keep the keyboard focus across the reload after an edit.
    const remembered = sessionStorage.getItem(KEY);
    if (remembered) {
      sessionStorage.removeItem(KEY);
      const target = grouping.querySelector(`.page[data-page="${remembered}"]`) || pages()[0];
      target?.focus();
    }

    grouping.addEventListener("keydown", (event) => {
      const page = event.target.closest?.(".page");
      if (!page) return;
      const all = pages();
      const at = all.indexOf(page);
      const seq = Number(page.dataset.page);
      const file = Number(page.dataset.file);
      const key = event.key;
      let handled = true;
      if (key === "ArrowRight" && !event.shiftKey) {
        all[at + 1]?.focus();
      } else if (key === "ArrowLeft" && !event.shiftKey) {
        all[at - 1]?.focus();
      } else if (key === "Enter") {
        location.href = `?file=${file}#file-${file}`;
      } else if (!editable) {
        handled = false;
      } else if ((key === "ArrowRight" || key === "ArrowLeft") && event.shiftKey) {
        const order = filePages(file);
        const i = order.indexOf(seq);
        const j = key === "ArrowRight" ? i + 1 : i - 1;
        if (j >= 0 && j < order.length) {
          [order[i], order[j]] = [order[j], order[i]];
          // Pages are renumbered in their new order; the moved page takes
          // the number of the place it moved to.
          sessionStorage.setItem(KEY, String(Math.min(...order) + j));
          edit({ action: "reorder", file, pages: order });
        }
      } else if ((key === "ArrowUp" || key === "ArrowDown") && event.shiftKey) {
        const list = files();
        const target = list[list.indexOf(file) + (key === "ArrowUp" ? -1 : 1)];
        if (target !== undefined) edit({ action: "assign", pages: [seq], to_file: target });
      } else if (key === "s" || key === "S") {
        sessionStorage.setItem(KEY, String(seq));
        edit({ action: "split", file, at_page: seq });
      } else if (key === "j" || key === "J") {
        const list = files();
        const into = list[list.indexOf(file) - 1];
        if (into !== undefined) {
          sessionStorage.setItem(KEY, String(seq));
          edit({ action: "join", file, into_file: into });
        }
      } else if (key === "x" || key === "X") {
        sessionStorage.setItem(KEY, String(seq));
        edit({ action: "separator", page: seq, separator: !page.classList.contains("separator") });
      } else {
        handled = false;
      }
      if (handled) event.preventDefault();
    });

    if (editable) {
      // Drag a page within its file to reorder it, or onto another file to
      // move it there (to the end of that file).
      let dragged = null;
      grouping.addEventListener("dragstart", (event) => {
        dragged = event.target.closest(".page");
        if (dragged) event.dataTransfer.setData("text/plain", dragged.dataset.page);
      });
      grouping.addEventListener("dragover", (event) => {
        if (dragged && event.target.closest(".strip")) event.preventDefault();
      });
      grouping.addEventListener("drop", (event) => {
        const strip = event.target.closest(".strip");
        if (!dragged || !strip) return;
        event.preventDefault();
        const seq = Number(dragged.dataset.page);
        const from = Number(dragged.dataset.file);
        const to = Number(strip.dataset.file);
        const over = event.target.closest(".page");
        if (from !== to) {
          edit({ action: "assign", pages: [seq], to_file: to });
        } else if (over && over !== dragged) {
          const order = filePages(from).filter((p) => p !== seq);
          order.splice(order.indexOf(Number(over.dataset.page)), 0, seq);
          edit({ action: "reorder", file: from, pages: order });
        }
        dragged = null;
      });
    }
  }

  // Metadata (著录) and the document checklist of the selected file.
  const form = document.getElementById("metadata-form");
  if (!form) return;
  const personId = document.getElementById("meta-person_id");
  const verdict = document.getElementById("person-id-check");
  function showPersonId() {
    const result = checkPersonId(personId.value);
    personId.classList.toggle("invalid", result.ok === false);
    personId.setCustomValidity(result.ok === false ? "invalid" : "");
    if (result.ok === null) verdict.textContent = "";
    else if (result.ok) verdict.textContent = t("✓ 校验通过", "✓ valid");
    else if (result.why === "checksum") verdict.textContent = t(`✗ 校验码错误（应为 ${result.expected}）`, `✗ wrong check digit (should be ${result.expected})`);
    else if (result.why === "date") verdict.textContent = t("✗ 出生日期无效", "✗ no such birth date");
    else verdict.textContent = t("✗ 应为 18 位（末位可为 X）", "✗ 18 characters expected (the last may be X)");
    verdict.className = result.ok === false ? "check error" : "check ok";
    verdict.dataset.valid = result.ok === null ? "" : String(result.ok);
  }
  if (personId) {
    personId.addEventListener("input", showPersonId);
    showPersonId();
  }
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (personId && checkPersonId(personId.value).ok === false) {
      dangan.say("metadata-status", t("身份证号校验未通过，未保存", "the person id is not valid; nothing saved"), true);
      personId.focus();
      return;
    }
    const file = form.dataset.file;
    const api = `${grouping.dataset.api}/files/${file}`;
    const patch = {};
    for (const name of ["business_number", "person_id", "person_name", "employer_id", "business_type", "business_date", "organisation"]) {
      const field = form.elements.namedItem(name);
      if (field) patch[name] = field.value.trim();
    }
    const documents = [];
    for (const row of form.querySelectorAll(".document")) {
      const present = row.querySelector('input[type="checkbox"]').checked;
      const note = row.querySelector(".absent-note").value.trim();
      if (present) documents.push({ document: row.dataset.document, present: true });
      else if (note) documents.push({ document: row.dataset.document, present: false, note });
    }
    dangan.say("metadata-status", t("保存中…", "saving…"));
    try {
      await dangan.api("PATCH", api, patch);
      if (documents.length) await dangan.api("PUT", `${api}/documents`, documents);
      dangan.say("metadata-status", t("已保存", "saved"));
      location.reload();
    } catch (err) {
      dangan.say("metadata-status", err.message, true);
    }
  });
});
