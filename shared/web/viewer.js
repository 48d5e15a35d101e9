// The page viewer: zoom, rotate, fit to width or to the whole page, and
// the keyboard (←/→ previous/next page, +/− zoom, W, 0, R).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const image = document.getElementById("page-image");
  const stage = document.getElementById("stage");
  if (!image || !stage) return;
  let rotation = 0; // degrees, a multiple of 90
  let scale = null; // null: fit width
  const natural = () => {
    const w = image.naturalWidth || Number(image.dataset.width) || 1;
    const h = image.naturalHeight || Number(image.dataset.height) || 1;
    return rotation % 180 === 0 ? [w, h] : [h, w];
  };
  function fitWidthScale() {
    const [w] = natural();
    return Math.max(0.05, (stage.clientWidth - 8) / w);
  }
  function fitPageScale() {
    const [w, h] = natural();
    const height = Math.max(200, window.innerHeight - stage.getBoundingClientRect().top - 16);
    return Math.max(0.05, Math.min((stage.clientWidth - 8) / w, height / h));
  }
  function apply() {
    const s = scale ?? fitWidthScale();
    const [w, h] = natural();
    const iw = image.naturalWidth || Number(image.dataset.width) || 1;
    const ih = image.naturalHeight || Number(image.dataset.height) || 1;
    image.style.width = `${iw * s}px`;
    image.style.height = `${ih * s}px`;
    image.style.transformOrigin = "top left";
    const shift = {
      0: "",
      90: `translate(${ih * s}px, 0)`,
      180: `translate(${iw * s}px, ${ih * s}px)`,
      270: `translate(0, ${iw * s}px)`,
    }[rotation];
    image.style.transform = `${shift} rotate(${rotation}deg)`;
    stage.style.height = `${h * s + 8}px`;
    stage.style.minWidth = `${Math.min(w * s, stage.clientWidth)}px`;
    const level = document.getElementById("zoom-level");
    if (level) level.textContent = `${Math.round(s * 100)}%`;
    stage.dataset.scale = s.toFixed(3);
    stage.dataset.rotation = String(rotation);
  }
  const zoom = (factor) => { scale = Math.min(8, Math.max(0.05, (scale ?? fitWidthScale()) * factor)); apply(); };
  const rotate = () => { rotation = (rotation + 90) % 360; apply(); };
  const fitWidth = () => { scale = null; apply(); };
  const fitPage = () => { scale = fitPageScale(); apply(); };
  const on = (id, fn) => document.getElementById(id)?.addEventListener("click", fn);
  on("zoom-in", () => zoom(1.25));
  on("zoom-out", () => zoom(0.8));
  on("rotate", rotate);
  on("fit-width", fitWidth);
  on("fit-page", fitPage);
  image.addEventListener("load", apply);
  window.addEventListener("resize", apply);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLInputElement) return;
    const go = (id) => { const link = document.getElementById(id); if (link) location.href = link.href; };
    switch (event.key) {
      case "ArrowLeft": case "PageUp": go("prev"); break;
      case "ArrowRight": case "PageDown": go("next"); break;
      case "+": case "=": zoom(1.25); break;
      case "-": case "_": zoom(0.8); break;
      case "w": case "W": fitWidth(); break;
      case "0": fitPage(); break;
      case "r": case "R": rotate(); break;
      default: return;
    }
    event.preventDefault();
  });
  if (image.complete) apply();
});
