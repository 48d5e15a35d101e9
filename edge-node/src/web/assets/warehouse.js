// The warehouse pages: forms that post to the JSON API, the keyboard-wedge
// screens (a handheld scanner types a code and Enter into the focused
// input), loan steps, check resolutions and label sheets.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, t, say } = dangan;
  const norm = (text) => text.trim().toUpperCase();
  const statusOf = (form) => form.querySelector(".status");

  // Plain forms: the fields as a JSON object (empty fields left out,
  // numbers as numbers), then reload (or go to data-then + the new id).
  document.querySelectorAll("form.wh-form").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const el of form.elements) {
        if (!el.name || el.value === "") continue;
        body[el.name] = el.type === "number" ? Number(el.value) : el.value;
      }
      const status = statusOf(form);
      try {
        const created = await api("POST", form.dataset.api, body);
        if (form.dataset.then && created && created.id !== undefined) {
          location.href = form.dataset.then + created.id;
        } else {
          location.reload();
        }
      } catch (err) {
        if (status) { status.textContent = err.message; status.classList.add("error"); }
      }
    });
  });

  // Keyboard-wedge shelving: a box label, then a shelf label (the box is
  // shelved); or a volume label, then a box label (the volume is boxed).
  const wedge = document.getElementById("wedge");
  if (wedge) {
    const input = document.getElementById("scan");
    const log = document.getElementById("shelved");
    let held = null;
    const prompt = (text) => { document.getElementById("prompt").textContent = text; };
    const logged = (text, item, place) => {
      const li = document.createElement("li");
      li.textContent = text;
      li.dataset.item = item;
      li.dataset.place = place;
      log.prepend(li);
    };
    wedge.addEventListener("submit", async (event) => {
      event.preventDefault();
      const code = norm(input.value);
      input.value = "";
      input.focus();
      if (!code) return;
      if (!held) {
        if (code.startsWith("BOX-")) {
          held = code;
          say("scan-status", t(`已扫描盒 ${held}`, `Box ${held} scanned`));
          prompt(t("请扫描层位标签", "Now scan the shelf label"));
        } else if (code.startsWith("VOL-")) {
          held = code;
          say("scan-status", t(`已扫描案卷 ${held}`, `Volume ${held} scanned`));
          prompt(t("请扫描盒标签", "Now scan the box label"));
        } else {
          say("scan-status", t(`${code} 不是盒标签或卷标签，请先扫描盒或卷`, `${code} is not a box or volume label: scan a box or volume first`), true);
        }
        return;
      }
      const item = held;
      held = null;
      prompt(t("请扫描盒标签或卷标签", "Scan a box or volume label"));
      try {
        let moved;
        if (item.startsWith("VOL-")) {
          moved = (await api("POST", `/api/v1/warehouse/volumes/${encodeURIComponent(item)}/box`, { box: code })).moved;
        } else {
          moved = (await api("POST", "/api/v1/warehouse/shelvings", { box: item, shelf: code })).moved;
        }
        const text = moved
          ? t(`${item} 已放入 ${code}`, `${item} put in ${code}`)
          : t(`${item} 已在 ${code}，无变化`, `${item} was already in ${code}`);
        say("scan-status", text);
        logged(text, item, code);
      } catch (err) {
        say("scan-status", err.message, true);
      }
    });
    const upload = document.getElementById("csv-upload");
    upload.addEventListener("click", async () => {
      const file = document.getElementById("csv-file").files[0];
      if (!file) return;
      try {
        const result = await api("POST", "/api/v1/warehouse/shelvings/csv", file, "text/csv");
        say("csv-status", t(`已上架 ${result.moved} 盒`, `${result.moved} boxes shelved`));
      } catch (err) {
        say("csv-status", err.message, true);
      }
    });
  }

  // Loans: approve, refuse (with a reason), lend, return.
  document.querySelectorAll("#loans button.step").forEach((button) => {
    button.addEventListener("click", async () => {
      const row = button.closest("tr");
      const step = button.dataset.step;
      let note = null;
      if (step === "refuse") {
        note = prompt(t("拒绝理由", "Why is it refused?"));
        if (!note) return;
      }
      try {
        await api("POST", `/api/v1/warehouse/loans/${row.dataset.loan}/steps`, { step, note });
        location.reload();
      } catch (err) {
        say("loan-status", err.message, true);
      }
    });
  });

  // Inventory check: scans one by one (wedge) or a handheld's file.
  const checkForm = document.getElementById("check-wedge");
  if (checkForm) {
    const id = checkForm.dataset.check;
    const input = document.getElementById("scan");
    const send = async (codes) => {
      try {
        const outcomes = await api("POST", `/api/v1/warehouse/checks/${id}/scans`, { codes });
        const last = outcomes[outcomes.length - 1];
        if (!last) return;
        let text;
        if (last.kind === "location") text = t(`当前位置：${last.code}`, `At: ${last.code}`);
        else if (last.kind === "unknown") text = t(`${last.code}：系统中没有此编号`, `${last.code}: not known`);
        else if (last.expected === last.found) text = t(`${last.code} 在位`, `${last.code} in place`);
        else text = t(`${last.code} 应在 ${last.expected || "—"}，实在 ${last.found}`, `${last.code} belongs at ${last.expected || "—"}, found at ${last.found}`);
        say("scan-status", outcomes.length > 1 ? t(`已记录 ${outcomes.length} 个编号。`, `${outcomes.length} codes recorded. `) + text : text);
        return true;
      } catch (err) {
        say("scan-status", err.message, true);
        return false;
      }
    };
    checkForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const code = norm(input.value);
      input.value = "";
      input.focus();
      if (code) await send([code]);
    });
    document.getElementById("scan-upload").addEventListener("click", async () => {
      const file = document.getElementById("scan-file").files[0];
      if (!file) return;
      const codes = (await file.text()).split(/\r?\n/).map(norm).filter(Boolean);
      if (await send(codes)) location.reload();
    });
    document.getElementById("check-finish").addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/warehouse/checks/${id}/finish`);
        location.reload();
      } catch (err) {
        say("scan-status", err.message, true);
      }
    });
  }
  document.querySelectorAll("#discrepancies button.resolve").forEach((button) => {
    button.addEventListener("click", async () => {
      const table = button.closest("table");
      const row = button.closest("tr");
      const action = button.dataset.action;
      let note = "";
      if (action === "note") {
        note = prompt(t("处理说明", "What was done?")) || "";
        if (!note.trim()) return;
      }
      try {
        await api("POST", `/api/v1/warehouse/checks/${table.dataset.check}/resolutions`, { item: row.dataset.item, action, note });
        location.reload();
      } catch (err) {
        say("resolve-status", err.message, true);
      }
    });
  });

  // Labels: the PDF opens in a new tab (or downloads).
  const labelForm = document.getElementById("label-form");
  if (labelForm) {
    labelForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const codes = document.getElementById("label-codes").value.split(/\r?\n/).map(norm).filter(Boolean);
      const start = Number(document.getElementById("label-start").value || 0);
      const response = await fetch("/api/v1/warehouse/labels", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
          "Accept-Language": dangan.lang,
        },
        body: JSON.stringify({ codes, start }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        say("label-status", body && body.error ? body.error.message : `${response.status}`, true);
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = "labels.pdf";
      link.id = "label-download";
      link.textContent = t(`标签 PDF（${codes.length} 枚）`, `Label PDF (${codes.length} labels)`);
      const status = document.getElementById("label-status");
      status.textContent = "";
      status.classList.remove("error");
      status.append(link);
      link.click();
    });
  }
});
