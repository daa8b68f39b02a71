// The workbench page: sign in, open a case, load and prepare an image (the server renders the
// preparation, so what is shown is what is searched), mask, filter, search, compare, decide,
// export. State lives here; each panel's behaviour is in its own module.

import { blob, getJSON, imageUrl, loadImage, postForm, postJSON, setToken, token } from "./api.js";
import { MaskEditor } from "./mask.js";
import { Results } from "./results.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const state = {
  config: null, caseId: null, upload: null, rulerPx: null, pxPerCmSet: false, previewSeq: 0,
  prep: { crop: null, ink: "dark", levels: { black: 0, white: 255, gamma: 1 }, rotate_deg: 0,
          flip_horizontal: false, flip_vertical: false, px_per_cm: null, placement: null },
  placement: null,  // the examiner's own placement (Move tool); null = centred
};

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; $("error-text").textContent = ""; }
function status(text) { $("status").textContent = text; }

// Runs a user's action: its failure is shown; a new action clears the last message.
// Background work (the debounced preview) passes clear = false so it never hides a message.
async function guarded(action, clear = true) {
  try {
    if (clear) clearError();
    await action();
  } catch (error) {
    status("");
    showError(error.message);
  }
}

// --- sign-in and case ----------------------------------------------------------------------
async function start() {
  try {
    state.config = await getJSON("/v1/workbench");
  } catch (error) {
    state.config = null;
    $("user").textContent = "";
    showError(error.status === 401 ? "Sign in with your bearer token." : error.message);
    return;
  }
  clearError();
  const c = state.config;
  $("user").textContent = `signed in as ${c.user}`;
  $("index-info").textContent = `index ${c.index_version} · canvas ${c.canvas.width}×${c.canvas.height} · ${c.px_per_cm.toFixed(2)} px/cm`;
  $("pxcm").min = c.limits.px_per_cm[0];
  $("pxcm").max = c.limits.px_per_cm[1];
  if (!state.pxPerCmSet) setPxPerCm(c.px_per_cm, false);
  mask.setCanvas(c.canvas.width, c.canvas.height, Math.max(512, c.canvas.width * 2));
  buildAttributes(c.attribute_values);
  await listCases();
}

async function listCases() {
  const cases = await getJSON("/v1/cases");
  const select = $("case-select");
  select.replaceChildren(new Option("— choose —", ""));
  for (const c of cases) select.append(new Option(`${c.id} — ${c.title}`, c.id));
  if (state.caseId) select.value = state.caseId;
}

async function openCase(event) {
  event.preventDefault();
  await guarded(async () => {
    const newId = $("case-id").value.trim();
    if (newId) {
      await postJSON("/v1/cases", { id: newId, title: $("case-title").value.trim() });
      state.caseId = newId;
      $("case-id").value = "";
    } else if ($("case-select").value) {
      state.caseId = $("case-select").value;
    } else {
      throw new Error("choose a case or type a new case id");
    }
    await listCases();
    $("case-current").textContent = `Case ${state.caseId} is open.`;
    await refreshCaseFile();
  });
}

function needCase() {
  if (!state.caseId) throw new Error("open or create a case first");
  return encodeURIComponent(state.caseId);
}

// --- image --------------------------------------------------------------------------------
async function loadFile(file) {
  await guarded(async () => {
    const caseId = needCase();
    const limit = state.config.limits.max_upload_bytes;
    if (file.size > limit) throw new Error(`${file.name} is ${file.size} bytes; the upload limit is ${limit} bytes`);
    status(`uploading ${file.name} …`);
    const form = new FormData();
    form.append("image", file, file.name);
    const upload = await postForm(`/v1/cases/${caseId}/uploads`, form);
    state.upload = { ...upload, filename: file.name };
    const view = await loadImage(await imageUrl(`/v1/cases/${caseId}/uploads/${upload.sha256}/view.png`));
    viewer.show(view);
    state.prep.crop = null;
    state.placement = null;
    await propose(file);
    $("original-info").textContent = `${file.name} · ${upload.format} ${upload.width}×${upload.height} · SHA-256 ${upload.sha256}`;
    status(`${file.name} loaded`);
    await preview();
  });
}

// --- automatic proposal -------------------------------------------------------------------
// The server reads the photograph (ruler, print region, long axis) and the preparation is
// pre-filled from it: a starting point the examiner accepts or corrects. What it could not
// find is said, and that value is left as it was (the scale stays "assumed").
const mid = (a, b) => ({ x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 });

async function propose(file) {
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("case_id", state.caseId);
  status(`reading the ruler and the print in ${file.name} …`);
  let p;
  try {
    p = await postForm("/v1/prepare", form);
  } catch (error) {
    $("proposal-info").textContent = `No automatic proposal (${error.message}): prepare by hand.`;
    return;
  }
  state.proposal = p;
  const found = [];
  if (p.scale.px_per_cm !== null) {
    setPxPerCm(p.scale.px_per_cm, true);
    $("pxcm-note").textContent = `(proposed from the ruler: ± ${p.scale.uncertainty} px/cm, confidence ${p.scale.confidence})`;
    const c = p.scale.ruler_corners;
    viewer.ruler = [mid(c[0], c[3]), mid(c[1], c[2])];
    found.push(`scale ${p.scale.px_per_cm.toFixed(2)} px/cm (confidence ${p.scale.confidence})`);
  }
  if (p.crop.box) {
    state.prep.crop = p.crop.box;
    viewer.crop = p.crop.box;
    found.push(`crop ${p.crop.box[2] - p.crop.box[0]}×${p.crop.box[3] - p.crop.box[1]} px (confidence ${p.crop.confidence})`);
  }
  if (p.rotation.rotate_deg !== null) {
    setRotation(p.rotation.rotate_deg);
    found.push(`turn ${p.rotation.rotate_deg}° toe right (axis confidence ${p.rotation.axis_confidence}; toe or heel is a guess — try the other turn)`);
  }
  if (p.mask.canvas_png) {
    mask.load(await loadImage(`data:image/png;base64,${p.mask.canvas_png}`));
    found.push("mask from the print's texture");
  }
  viewer.draw();
  const missing = p.problems.length ? ` Not found: ${p.problems.join("; ")}.` : "";
  $("proposal-info").textContent = found.length
    ? `Proposed automatically — check each value: ${found.join(" · ")}.${missing}`
    : `Nothing proposed.${missing} Prepare by hand.`;
}

function otherTurn() {
  setRotation(Number($("rotate-num").value) + 180);
  mask.turnHalf();
}

// --- preparation ----------------------------------------------------------------------------
function setPxPerCm(value, measured) {
  state.prep.px_per_cm = Number(value);
  state.pxPerCmSet = measured;
  $("pxcm").value = Number(value).toFixed(2);
  $("pxcm-note").textContent = measured ? "" : "(assumed: the index scale; measure it with the ruler)";
}

function readPrep() {
  const p = state.prep;
  p.rotate_deg = Number($("rotate-num").value);
  p.flip_horizontal = $("flip-h").checked;
  p.flip_vertical = $("flip-v").checked;
  p.ink = $("ink").value;
  p.levels = { black: Number($("black").value), white: Number($("white").value), gamma: Number($("gamma").value) };
  p.placement = $("placement-search").checked ? "search" : state.placement;
  $("placement-info").textContent = p.placement === "search" ? "searched by the server (preview centred)"
    : p.placement ? `centre at ${p.placement.x.toFixed(1)}, ${p.placement.y.toFixed(1)} px` : "centred";
  return p;
}

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => guarded(preview, false), 200);
}

async function preview() {
  if (!state.upload) return;
  const seq = ++state.previewSeq;
  const form = new FormData();
  form.append("upload_sha256", state.upload.sha256);
  form.append("preparation", JSON.stringify(readPrep()));
  const png = await blob("POST", `/v1/cases/${needCase()}/prepare`, form);
  if (seq !== state.previewSeq) return;  // a newer preview is on its way
  const image = await loadImage(URL.createObjectURL(png));
  mask.setPrint(image);
  state.prepared = png;
  updateMaskInfo();
  await suggestDescriptors(png);
}

function setRotation(value) {
  let v = Number(value);
  while (v > 180) v -= 360;
  while (v < -180) v += 360;
  $("rotate").value = v;
  $("rotate-num").value = v;
  schedulePreview();
}

function onRuler(distancePx) {
  state.rulerPx = distancePx;
  $("ruler-px").textContent = `${distancePx.toFixed(1)} px between the points`;
  applyRuler();
  $("ruler-cm").focus();
}

function applyRuler() {
  const cm = Number($("ruler-cm").value);
  if (!state.rulerPx || !cm) return;
  const value = state.rulerPx / cm;
  const [lo, hi] = state.config.limits.px_per_cm;
  if (value < lo || value > hi) {
    showError(`the ruler gives ${value.toFixed(2)} px/cm; the scale must be between ${lo} and ${hi} px/cm`);
    return;
  }
  setPxPerCm(value, true);
  schedulePreview();
}

function onPxPerCm() {
  const value = Number($("pxcm").value);
  const [lo, hi] = state.config.limits.px_per_cm;
  if (!(value >= lo && value <= hi)) {
    showError(`scale ${$("pxcm").value} px/cm is outside ${lo}–${hi} px/cm`);
    return;
  }
  clearError();
  setPxPerCm(value, true);
  schedulePreview();
}

function onMovePrint(dx, dy) {
  const c = state.config.canvas;
  const p = state.placement || { x: c.width / 2, y: c.height / 2 };
  state.placement = { x: Math.round((p.x + dx) * 10) / 10, y: Math.round((p.y + dy) * 10) / 10 };
  $("placement-search").checked = false;
  schedulePreview();
}

function updateMaskInfo() {
  const visible = mask.visibleCount();
  const total = mask.width * mask.height;
  $("mask-info").textContent = `${visible} of ${total} canvas pixels visible (${(100 * visible / total).toFixed(1)} %)`;
}

// --- filters ------------------------------------------------------------------------------
function buildAttributes(values) {
  const box = $("attributes");
  box.replaceChildren();
  for (const [name, options] of Object.entries(values)) {
    const label = document.createElement("label");
    label.textContent = name;
    label.htmlFor = `attr-${name}`;
    const select = document.createElement("select");
    select.id = `attr-${name}`;
    select.dataset.attribute = name;
    select.append(new Option("(any)", ""));
    for (const v of options) select.append(new Option(v, v));
    box.append(label, select);
  }
}

async function suggestDescriptors(png) {
  const box = $("suggestions");
  if (!state.config.descriptor_model) { box.textContent = "no descriptor model: no suggestions"; return; }
  const form = new FormData();
  form.append("print", png, "prepared.png");
  const answer = await postForm("/v1/descriptors", form);
  box.replaceChildren();
  const ranked = Object.entries(answer.scores).sort((a, b) => b[1] - a[1]).slice(0, 6);
  for (const [code, score] of ranked) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "suggestion";
    button.dataset.code = code;
    button.textContent = `+ ${code} ${score.toFixed(2)}${answer.labels.includes(code) ? " ✓" : ""}`;
    button.title = `add ${code} (predicted score ${score.toFixed(2)})`;
    button.addEventListener("click", () => addCode(code));
    box.append(button);
  }
}

function addCode(code) {
  const codes = parseCodes();
  if (!codes.includes(code)) codes.push(code);
  $("codes").value = codes.join(", ");
}

function parseCodes() {
  return $("codes").value.split(/[\s,;]+/).map((c) => c.trim().toUpperCase()).filter(Boolean);
}

function filters() {
  const attributes = {};
  document.querySelectorAll("#attributes select").forEach((s) => {
    if (s.value) attributes[s.dataset.attribute] = [s.value];
  });
  return { descriptors: parseCodes(), attributes };
}

// --- search, case file ------------------------------------------------------------------
async function search() {
  await guarded(async () => {
    const caseId = needCase();
    if (!state.upload) throw new Error("load a crime-scene image first");
    if (!mask.visibleCount()) throw new Error("the mask is empty: paint the visible region of the print first");
    if (state.searching) return;  // not disabled: a disabled button would drop keyboard focus
    state.searching = true;
    status("searching …");
    $("search").setAttribute("aria-busy", "true");
    const form = new FormData();
    form.append("upload_sha256", state.upload.sha256);
    form.append("preparation", JSON.stringify(readPrep()));
    form.append("mask", await mask.png(), "mask.png");
    form.append("filters", JSON.stringify(filters()));
    form.append("k", "100");
    try {
      const answer = await postForm(`/v1/cases/${caseId}/queries`, form);
      state.queryId = answer.query_id;
      results.set(state.caseId, answer.query_id, answer.results, {}, answer);
      const chosen = answer.placement ? ` · placement x=${answer.placement.chosen.x.toFixed(0)} chosen` : "";
      $("search-info").textContent = `query ${answer.query_id}: ${answer.results.length} models · index ${answer.index_version}${chosen}`;
      status(`query ${answer.query_id} recorded`);
      await refreshCaseFile();
    } finally {
      state.searching = false;
      $("search").removeAttribute("aria-busy");
    }
  });
}

async function refreshCaseFile() {
  if (!state.caseId) return;
  const file = await getJSON(`/v1/cases/${needCase()}`);
  const body = $("queries").querySelector("tbody");
  body.replaceChildren();
  for (const q of file.queries) {
    const tr = document.createElement("tr");
    tr.dataset.queryId = q.id;
    const cells = [q.id, `${q.created_at.slice(0, 19).replace("T", " ")} UTC`, q.created_by, q.index_version,
                   q.result_digest.slice(0, 16) + "…", Object.keys(q.decisions).length];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    tr.children[4].className = "digest";
    const td = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Show";
    open.addEventListener("click", () => { state.queryId = q.id; results.set(state.caseId, q.id, q.results, q.decisions); });
    const rerun = document.createElement("button");
    rerun.type = "button";
    rerun.textContent = "Re-run";
    rerun.addEventListener("click", () => guarded(async () => {
      const answer = await postJSON(`/v1/cases/${needCase()}/queries/${q.id}/rerun`, {});
      const span = document.createElement("span");
      span.className = answer.same_ranking ? "same" : "differs";
      span.textContent = answer.same_ranking ? " same ranking" : ` ranking differs (index ${answer.index_version})`;
      td.append(span);
    }));
    td.append(open, " ", rerun);
    tr.append(td);
    body.append(tr);
  }
}

async function exportReport(kind) {
  await guarded(async () => {
    const caseId = needCase();
    status(`exporting the ${kind.toUpperCase()} report …`);
    const file = await blob("GET", `/v1/cases/${caseId}/report.${kind}`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(file);
    link.download = `case-${state.caseId}.${kind}`;
    document.body.append(link);
    link.click();
    link.remove();
    status(`case-${state.caseId}.${kind} exported`);
  });
}

// --- wiring -------------------------------------------------------------------------------
const viewer = new Viewer($("original"), {
  onRuler,
  onCrop: (crop) => { state.prep.crop = crop; schedulePreview(); },
});
const mask = new MaskEditor($("print-layer"), $("mask-layer"), { onMove: onMovePrint, onChange: updateMaskInfo });
const results = new Results({ onError: showError, onDecided: () => guarded(refreshCaseFile) });

function pressTool(attribute, tool) {
  document.querySelectorAll(`[${attribute}]`).forEach((b) =>
    b.setAttribute("aria-pressed", String(b.getAttribute(attribute) === tool)));
}

$("signin").addEventListener("submit", (e) => { e.preventDefault(); setToken($("token").value.trim()); $("token").value = ""; start(); });
$("error-close").addEventListener("click", clearError);
$("case-form").addEventListener("submit", openCase);
$("file").addEventListener("change", (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]);
});
document.querySelectorAll("[data-view-tool]").forEach((b) => b.addEventListener("click", () => {
  viewer.tool = b.dataset.viewTool;
  pressTool("data-view-tool", viewer.tool);
}));
document.querySelectorAll("[data-mask-tool]").forEach((b) => b.addEventListener("click", () => {
  mask.tool = b.dataset.maskTool;
  pressTool("data-mask-tool", mask.tool);
}));
$("zoom-in").addEventListener("click", () => viewer.zoom(1.25));
$("zoom-out").addEventListener("click", () => viewer.zoom(0.8));
$("zoom-fit").addEventListener("click", () => viewer.fit());
$("proposal-turn").addEventListener("click", otherTurn);
$("crop-clear").addEventListener("click", () => { state.prep.crop = null; viewer.crop = null; viewer.draw(); schedulePreview(); });
$("rotate").addEventListener("input", (e) => setRotation(e.target.value));
$("rotate-num").addEventListener("change", (e) => setRotation(e.target.value));
$("rot-left").addEventListener("click", () => setRotation(Number($("rotate-num").value) + 90));
$("rot-right").addEventListener("click", () => setRotation(Number($("rotate-num").value) - 90));
for (const id of ["flip-h", "flip-v", "ink", "black", "white", "gamma"]) $(id).addEventListener("input", schedulePreview);
$("ruler-cm").addEventListener("change", applyRuler);
$("pxcm").addEventListener("change", onPxPerCm);
$("placement-reset").addEventListener("click", () => { state.placement = null; schedulePreview(); });
$("placement-search").addEventListener("change", schedulePreview);
$("brush-size").addEventListener("input", (e) => { mask.size = Number(e.target.value); });
$("undo").addEventListener("click", () => mask.undo());
$("redo").addEventListener("click", () => mask.redo());
$("mask-all").addEventListener("click", () => mask.fill(1));
$("mask-none").addEventListener("click", () => mask.fill(0));
$("search").addEventListener("click", search);
$("export-pdf").addEventListener("click", () => exportReport("pdf"));
$("export-html").addEventListener("click", () => exportReport("html"));

// For the browser tests and for scripting: read-only views of the page's state.
window.workbench = {
  state, viewer, mask, results,
  imageToClient: (x, y) => viewer.imageToClient(x, y),
  maskPng: async () => new Uint8Array(await (await mask.png()).arrayBuffer()),
  hasToken: () => Boolean(token()),
};
start();
