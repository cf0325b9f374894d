// Editor page controller: owns the definition, undo/redo, clipboard, save and validation, and
// wires the palette, canvas, properties panel, JSON view, version history and runs together.
//
// Modules (plain ES modules, no bundler):
//   model.js    the definition JSON (the API's format) and pure helpers over it; node types by key
//   canvas.js   renders a definition with AntV X6 and turns X6's interaction into events; never
//               mutates the definition
//   live-run.js a run started from the editor, followed over ws/runs/<id>/ (node statuses)
//   step-tools.js  the field picker and "Test step" / pinned outputs of the properties panel
//   panel.js    properties form generated from a node type's parameters schema
//   monaco.js   the only place that loads Monaco (AMD build from <static>/vendor/monaco/vs)
//   history.js  undo/redo over JSON snapshots
//   api.js      REST client (CSRF, one error type); ui.js toasts/dialogs; icons.js inline SVG
//
// Every change goes through commit(mutate): clone, mutate, record the old snapshot, re-render.

import { api, ApiError } from "./api.js";
import { Canvas, NODE_W, HEAD_H, nodeHeight } from "./canvas.js";
import { History } from "./history.js";
import {
  CATEGORIES, NodeTypes, canConnect, clone, copyNodes, layeredLayout, makeNode, normalize, pasteNodes,
  problemTarget, removeNodes,
} from "./model.js";
import { PropertiesPanel } from "./panel.js";
import { LiveRun } from "./live-run.js";
import { StepTools } from "./step-tools.js";
import { hydrateIcons, setIcon } from "./icons.js";
import { confirmDialog, h, modal, relativeTime, toast } from "./ui.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const types = new NodeTypes(boot.nodeTypes);
const $ = (sel) => document.querySelector(sel);
const CLIP_KEY = "stepwell.clipboard";

const state = {
  id: boot.workflow.id,
  name: boot.workflow.name,
  version: boot.workflow.version,
  def: normalize(boot.workflow.definition),
  saved: null,
  problems: [],
  saving: false,
  clipboard: null,
  pasteCount: 0,
};
state.saved = JSON.stringify(state.def);
const history = new History();

// ---- canvas & panel --------------------------------------------------------------------------

const canvas = new Canvas($("#canvas"), types);
const stepTools = new StepTools({
  workflowId: boot.workflow.id, types,
  getDefinition: () => state.def,
  savedNode: (id) => JSON.parse(state.saved).nodes.find((n) => n.id === id) || null,
  ensureSaved: () => ensureSaved(),
});
const panel = new PropertiesPanel($("#props"), types, {
  tools: stepTools,
  onEdit: (nodeId, mutate, mergeKey) => commit((d) => {
    const n = d.nodes.find((x) => x.id === nodeId);
    if (n) mutate(n);
  }, { mergeKey, source: "panel" }),
  onEditSettings: (mutate, mergeKey) => commit((d) => {
    d.settings = d.settings || {};
    mutate(d.settings);
  }, { mergeKey, source: "panel" }),
  onDelete: (ids) => deleteNodes(ids || [...canvas.selection]),
});
panel.currentNode = () => selectedNode();
panel.getDefinition = () => state.def;

function selectedNode() {
  if (canvas.selection.size !== 1) return null;
  const [id] = canvas.selection;
  return state.def.nodes.find((n) => n.id === id) || null;
}

function problemsFor(id) {
  return state.problems.filter((p) => p.target.nodeId === id);
}

function refreshPanel() {
  const node = selectedNode();
  panel.show(node, canvas.selection.size, node ? problemsFor(node.id) : [], state.def);
}

window.stepwell = {
  canvas, types, state, history, stepTools, monaco: null,
  get definition() { return state.def; },
  save: () => save(), undo: () => undo(), redo: () => redo(),
};

// ---- committing changes ----------------------------------------------------------------------

function commit(mutate, { mergeKey = null, source = "canvas" } = {}) {
  const before = JSON.stringify(state.def);
  const next = clone(state.def);
  mutate(next);
  const after = JSON.stringify(next);
  if (after === before) return false;
  history.record(before, mergeKey);
  state.def = next;
  changed(source);
  return true;
}

function replaceDefinition(json, source) {
  state.def = normalize(JSON.parse(json));
  changed(source);
}

function changed(source) {
  canvas.render(state.def);
  if (source !== "panel") refreshPanel();
  updateStatus();
  scheduleValidation();
  if (jsonOpen && source !== "json") fillJson();
  stepTools.notify();
  $("#empty-canvas").hidden = state.def.nodes.length > 0;
}

function undo() {
  const prev = history.undo(JSON.stringify(state.def));
  if (prev !== null) replaceDefinition(prev, "history");
}

function redo() {
  const next = history.redo(JSON.stringify(state.def));
  if (next !== null) replaceDefinition(next, "history");
}

const isDirty = () => JSON.stringify(state.def) !== state.saved;

function updateStatus() {
  const dirty = isDirty();
  $("#dirty-marker").hidden = !dirty;
  document.body.classList.toggle("is-dirty", dirty);
  $("#btn-save").disabled = state.saving;
  $("#btn-undo").disabled = !history.canUndo;
  $("#btn-redo").disabled = !history.canRedo;
  $("#version-badge").textContent = state.version ? `v${state.version}` : "new";
  document.title = `${dirty ? "● " : ""}${state.name} · Stepwell`;
}

// ---- canvas events -----------------------------------------------------------------------------

canvas.addEventListener("select", () => refreshPanel());
canvas.addEventListener("edgeselect", () => refreshPanel());
canvas.addEventListener("move", (e) => commit((d) => {
  for (const n of d.nodes) if (e.detail.positions[n.id]) n.position = { ...e.detail.positions[n.id] };
}));
canvas.addEventListener("droptype", (e) => addNode(e.detail.type, e.detail.position));
canvas.addEventListener("connect", (e) => connect(e.detail));
canvas.addEventListener("disconnect", (e) => {
  // An edge picked up at its input: dropped on nothing it is removed; dropped on another input
  // it moves there, unless that connection is not allowed (then it stays where it was).
  const { index, then } = e.detail;
  if (then) {
    const rest = { ...state.def, edges: state.def.edges.filter((_, i) => i !== index) };
    const why = canConnect(rest, types, then);
    if (why) { toast(why, "error"); return; }
  }
  commit((d) => {
    d.edges.splice(index, 1);
    if (then) d.edges.push(then);
  });
});
canvas.addEventListener("deleterequest", (e) => deleteNodes(e.detail.ids));
canvas.addEventListener("open", () => {
  const first = $("#props input:not([readonly]), #props textarea");
  if (first) first.focus();
});
canvas.addEventListener("viewport", (e) => {
  $("#zoom-level").textContent = `${Math.round(e.detail.k * 100)}%`;
});

function addNode(typeKey, position) {
  const type = types.get(typeKey);
  if (!type) return;
  let node;
  commit((d) => {
    node = makeNode(d, type, position);
    d.nodes.push(node);
  });
  canvas.setSelection([node.id]);
  if (type.category === "trigger" && state.def.nodes.filter((n) => types.get(n.type)?.category === "trigger").length > 1) {
    toast("A workflow has exactly one trigger: remove the other one before saving.", "info");
  }
}

function connect(edge) {
  const why = canConnect(state.def, types, edge);
  if (why) { toast(why, "error"); return; }
  commit((d) => d.edges.push({ ...edge }));
}

function deleteNodes(ids) {
  if (!ids.length) return;
  commit((d) => removeNodes(d, ids));
  canvas.setSelection([]);
}

function deleteSelection() {
  if (canvas.selection.size) deleteNodes([...canvas.selection]);
  else if (canvas.selectedEdge !== null) {
    const i = canvas.selectedEdge;
    commit((d) => d.edges.splice(i, 1));
    canvas.selectEdge(null);
  }
}

// ---- clipboard ---------------------------------------------------------------------------------

function copySelection() {
  if (!canvas.selection.size) return false;
  state.clipboard = copyNodes(state.def, [...canvas.selection]);
  state.pasteCount = 0;
  try { localStorage.setItem(CLIP_KEY, JSON.stringify(state.clipboard)); } catch { /* private mode */ }
  toast(`Copied ${state.clipboard.nodes.length} node${state.clipboard.nodes.length > 1 ? "s" : ""}`, "info", { timeout: 1500 });
  return true;
}

function paste() {
  let clip = state.clipboard;
  try {
    const stored = JSON.parse(localStorage.getItem(CLIP_KEY) || "null");
    if (stored && stored.kind === "stepwell.clipboard/v1") clip = stored;
  } catch { /* ignore */ }
  if (!clip || !clip.nodes.length) return;
  state.pasteCount += 1;
  const off = 40 * state.pasteCount;
  let ids = [];
  commit((d) => { ids = pasteNodes(d, clip, { x: off, y: off }); });
  canvas.setSelection(ids);
}

// ---- validation --------------------------------------------------------------------------------

let validateTimer = null;
let validateSeq = 0;

function scheduleValidation(delay = 500) {
  clearTimeout(validateTimer);
  validateSeq += 1;  // answers for older definitions are dropped
  setValidation("checking");
  validateTimer = setTimeout(runValidation, delay);
}

async function runValidation() {
  const seq = ++validateSeq;
  try {
    const res = await api.validate(state.def);
    if (seq !== validateSeq) return;
    showProblems(res.errors || []);
  } catch (err) {
    if (seq !== validateSeq) return;
    setValidation("unknown");
  }
}

function showProblems(errors) {
  state.problems = errors.map((p) => ({ ...p, target: problemTarget(state.def, p) }));
  const byNode = new Map();
  const edges = new Set();
  for (const p of state.problems) {
    if (p.target.nodeId) {
      if (!byNode.has(p.target.nodeId)) byNode.set(p.target.nodeId, []);
      byNode.get(p.target.nodeId).push(p.message);
    }
    if (p.target.edgeIndex !== null) edges.add(p.target.edgeIndex);
  }
  canvas.setProblems(byNode, edges);
  const list = $("#problems-list");
  list.replaceChildren(...state.problems.map((p) => h("li", {
    class: "problem", tabindex: 0,
    onclick: () => focusProblem(p),
    onkeydown: (e) => { if (e.key === "Enter") focusProblem(p); },
  },
  h("span", { class: "problem-icon" }, "⚠"),
  p.target.nodeId ? h("span", { class: "problem-node" }, p.target.nodeId) : null,
  h("span", { class: "problem-msg" }, p.message),
  h("code", { class: "problem-path" }, p.target.path))));
  $("#problems-count").textContent = state.problems.length;
  $("#problems").hidden = state.problems.length === 0 || problemsCollapsed;
  setValidation(state.problems.length ? "invalid" : "valid");
  refreshPanel();
}

let problemsCollapsed = false;

function focusProblem(p) {
  if (p.target.nodeId && state.def.nodes.some((n) => n.id === p.target.nodeId)) {
    canvas.setSelection([p.target.nodeId]);
    canvas.centerOn(p.target.nodeId);
  } else if (p.target.edgeIndex !== null) {
    canvas.selectEdge(p.target.edgeIndex);
  }
}

function setValidation(kind) {
  const el = $("#validation-status");
  el.dataset.state = kind;
  const n = state.problems.length;
  el.textContent = {
    checking: "Checking…", valid: "✓ Valid", unknown: "Validation unavailable",
    invalid: `⚠ ${n} problem${n === 1 ? "" : "s"}`,
  }[kind];
}

$("#validation-status").addEventListener("click", () => {
  if (!state.problems.length) return;
  problemsCollapsed = !$("#problems").hidden;
  $("#problems").hidden = problemsCollapsed;
});
$("#problems-close").addEventListener("click", () => { problemsCollapsed = true; $("#problems").hidden = true; });

// ---- save --------------------------------------------------------------------------------------

async function save() {
  if (state.saving) return;
  state.saving = true;
  updateStatus();
  $("#btn-save").classList.add("busy");
  const sent = JSON.stringify(state.def);
  try {
    const res = await api.updateWorkflow(state.id, { definition: JSON.parse(sent) });
    state.version = res.version;
    state.saved = sent;
    toast(`Saved as version ${res.version}`, "success");
    showProblems([]);
    stepTools.refresh();  // pins go stale against the saved version
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && err.errors.length) {
      showProblems(err.errors);
      problemsCollapsed = false;
      $("#problems").hidden = false;
      toast(`Not saved: ${err.errors.length} problem${err.errors.length === 1 ? "" : "s"} in the workflow`, "error",
        { details: err.errors.slice(0, 3).map((e) => e.message) });
    } else {
      toast(`Save failed: ${err.message}`, "error");
    }
  } finally {
    state.saving = false;
    $("#btn-save").classList.remove("busy");
    updateStatus();
  }
}

$("#btn-save").addEventListener("click", save);
document.addEventListener("stepwell:save", save);
$("#btn-undo").addEventListener("click", undo);
$("#btn-redo").addEventListener("click", redo);
$("#zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
$("#zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
$("#zoom-fit").addEventListener("click", () => canvas.fit());
$("#zoom-level").addEventListener("click", () => canvas.zoomAt(1));
$("#btn-shortcuts").addEventListener("click", showShortcuts);
$("#btn-tidy").addEventListener("click", tidy);

function tidy() {
  const positions = layeredLayout(state.def, { heightOf: (n) => nodeHeight(types.ports(n.type)) });
  if (commit((d) => { for (const n of d.nodes) n.position = positions[n.id]; })) {
    canvas.fit();
    toast("Arranged left to right — Ctrl+Z to undo", "info", { timeout: 2000 });
  }
}

const SHORTCUTS = [
  [["Ctrl", "S"], "Save a new version"], [["Ctrl", "Z"], "Undo"], [["Ctrl", "Shift", "Z"], "Redo (also Ctrl+Y)"],
  [["Ctrl", "C"], "Copy selected nodes"], [["Ctrl", "V"], "Paste (new ids, offset)"], [["Ctrl", "X"], "Cut"],
  [["Ctrl", "A"], "Select all nodes"], [["Delete"], "Delete the selected nodes or edge"],
  [["Shift", "drag"], "Select with a rectangle"], [["Shift", "click"], "Add a node to the selection"],
  [["Wheel"], "Zoom at the pointer"], [["+"], "Zoom in"], [["-"], "Zoom out"], [["0"], "Fit to screen"],
  [["Esc"], "Clear the selection"], [["L"], "Arrange nodes left to right"],
];

function showShortcuts() {
  const mac = /Mac|iPhone|iPad/.test(navigator.platform);
  modal({
    title: "Keyboard shortcuts",
    body: h("dl", { class: "kbd-list" }, SHORTCUTS.flatMap(([keys, text]) => [
      h("dt", {}, keys.map((k, i) => [i ? " + " : "", h("kbd", {}, mac && k === "Ctrl" ? "⌘" : k)])),
      h("dd", { class: "muted", style: "margin:0" }, text)])),
    buttons: [{ label: "Close", value: "ok", kind: "primary" }],
  });
}

window.addEventListener("beforeunload", (e) => {
  if (!isDirty()) return;
  e.preventDefault();
  e.returnValue = "";
});

// ---- name --------------------------------------------------------------------------------------

const nameInput = $("#wf-name");
nameInput.value = state.name;
const sizeName = () => { nameInput.size = Math.max(8, Math.min(48, nameInput.value.length + 2)); };
sizeName();
nameInput.addEventListener("input", sizeName);
async function rename() {
  const name = nameInput.value.trim();
  if (!name || name === state.name) { nameInput.value = state.name; return; }
  try {
    const res = await api.updateWorkflow(state.id, { name });
    state.name = res.name;
    toast("Workflow renamed", "success", { timeout: 1800 });
  } catch (err) {
    nameInput.value = state.name;
    toast(`Rename failed: ${err.message}`, "error");
  }
  updateStatus();
}
nameInput.addEventListener("change", rename);
nameInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); nameInput.blur(); }
  if (e.key === "Escape") { nameInput.value = state.name; nameInput.blur(); }
});

// ---- keyboard ----------------------------------------------------------------------------------

function isTyping(target) {
  return target.closest && (target.closest("input, textarea, select, [contenteditable=true], .monaco-editor, dialog"));
}

document.addEventListener("keydown", (e) => {
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (mod && key === "s") { e.preventDefault(); save(); return; }
  if (isTyping(e.target)) return;
  if (mod && key === "z" && !e.shiftKey) { e.preventDefault(); undo(); }
  else if (mod && ((key === "z" && e.shiftKey) || key === "y")) { e.preventDefault(); redo(); }
  else if (mod && key === "c") { if (copySelection()) e.preventDefault(); }
  else if (mod && key === "x") { if (copySelection()) { e.preventDefault(); deleteSelection(); } }
  else if (mod && key === "v") { e.preventDefault(); paste(); }
  else if (mod && key === "a") { e.preventDefault(); canvas.setSelection(state.def.nodes.map((n) => n.id)); }
  else if (key === "delete" || key === "backspace") { e.preventDefault(); deleteSelection(); }
  else if (key === "?" ) showShortcuts();
  else if (key === "escape") { canvas.setSelection([]); canvas.selectEdge(null); }
  else if (!mod && (key === "+" || key === "=")) canvas.zoomBy(1.2);
  else if (!mod && key === "-") canvas.zoomBy(1 / 1.2);
  else if (!mod && key === "0") canvas.fit();
  else if (!mod && key === "l") tidy();
});

// ---- palette -----------------------------------------------------------------------------------

function buildPalette() {
  const root = $("#palette-groups");
  for (const cat of CATEGORIES) {
    const items = types.inCategory(cat.key);
    if (!items.length) continue;
    root.append(h("div", { class: "palette-group", "data-category": cat.key },
      h("div", { class: "palette-title" }, cat.label),
      items.map((t) => {
        const item = h("div", {
          class: `palette-item cat-${t.category}`, draggable: "true", tabindex: 0, role: "button",
          "data-type": t.key, title: `${t.description}\n\nDrag onto the canvas, or press Enter to add.`,
        },
        setIcon(h("span", { class: "palette-icon" }), t.key, t.icon || "•"),
        h("span", { class: "palette-text" }, h("span", { class: "palette-label" }, t.label),
          h("span", { class: "palette-desc" }, t.description)));
        item.addEventListener("dragstart", (e) => {
          e.dataTransfer.setData("application/x-stepwell-node", t.key);
          e.dataTransfer.setData("text/plain", t.key);
          e.dataTransfer.effectAllowed = "copy";
        });
        const addAtCenter = () => {
          const r = canvas.root.getBoundingClientRect();
          const p = canvas.clientToCanvas(r.left + r.width / 2, r.top + r.height / 2);
          addNode(t.key, { x: Math.round(p.x - NODE_W / 2 + 20 * (state.def.nodes.length % 5)), y: Math.round(p.y - HEAD_H) });
        };
        item.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); addAtCenter(); } });
        item.addEventListener("dblclick", addAtCenter);
        return item;
      })));
  }
  $("#palette-search").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const item of root.querySelectorAll(".palette-item")) {
      item.hidden = q && !item.textContent.toLowerCase().includes(q);
    }
    for (const g of root.querySelectorAll(".palette-group")) {
      g.hidden = ![...g.querySelectorAll(".palette-item")].some((i) => !i.hidden);
    }
  });
}

// ---- JSON view ---------------------------------------------------------------------------------

let jsonOpen = false;
function fillJson() {
  $("#json-text").value = JSON.stringify(state.def, null, 2);
  $("#json-error").textContent = "";
}
function toggleJson(open = !jsonOpen) {
  jsonOpen = open;
  $("#json-view").hidden = !open;
  $("#btn-json").classList.toggle("active", open);
  $("#btn-json").setAttribute("aria-pressed", String(open));
  if (open) { fillJson(); $("#history").hidden = true; }
}
$("#btn-json").addEventListener("click", () => toggleJson());
$("#json-revert").addEventListener("click", fillJson);
$("#json-apply").addEventListener("click", () => {
  let doc;
  try {
    doc = JSON.parse($("#json-text").value);
    if (!doc || typeof doc !== "object" || !Array.isArray(doc.nodes) || !Array.isArray(doc.edges)) {
      throw new Error("a definition is an object with `nodes` and `edges` arrays");
    }
  } catch (err) {
    $("#json-error").textContent = `Cannot apply: ${err.message}`;
    return;
  }
  const ok = commit((d) => { for (const k of Object.keys(d)) delete d[k]; Object.assign(d, normalize(doc)); }, { source: "json" });
  $("#json-error").textContent = "";
  toast(ok ? "JSON applied to the canvas" : "No changes", ok ? "success" : "info", { timeout: 1800 });
});

// ---- version history ---------------------------------------------------------------------------

async function openHistory() {
  const drawer = $("#history");
  drawer.hidden = false;
  if (jsonOpen) toggleJson(false);
  const list = $("#history-list");
  list.replaceChildren(h("li", { class: "muted" }, "Loading…"));
  try {
    const res = await api.versions(state.id);
    const versions = res.results || res;
    list.replaceChildren(...versions.map((v) => h("li", { class: `version ${v.number === state.version ? "current" : ""}`, "data-version": v.number },
      h("div", { class: "version-head" },
        h("span", { class: "badge" }, `v${v.number}`),
        v.number === state.version ? h("span", { class: "tag" }, "current") : null,
        h("span", { class: "muted small" }, relativeTime(v.created))),
      h("div", { class: "version-meta small" }, v.message || "saved", v.author ? ` · ${v.author}` : ""),
      h("div", { class: "version-actions" },
        h("button", { class: "btn btn-sm", type: "button", onclick: () => viewVersion(v.number) }, "View"),
        v.number === state.version ? null
          : h("button", { class: "btn btn-sm", type: "button", onclick: () => restoreVersion(v.number) }, "Restore")))));
  } catch (err) {
    list.replaceChildren(h("li", { class: "alert alert-error" }, err.message));
  }
}

async function viewVersion(n) {
  try {
    const v = await api.version(state.id, n);
    await modal({
      title: `Version ${n}`, className: "modal-wide",
      body: h("pre", { class: "json-pre" }, JSON.stringify(v.definition, null, 2)),
      buttons: [{ label: "Close", value: "cancel" }, { label: `Restore v${n}`, value: "restore", kind: "primary" }],
      onSubmit: async (value) => { if (value === "restore") await restoreVersion(n); },
    });
  } catch (err) {
    toast(err.message, "error");
  }
}

async function restoreVersion(n) {
  if (isDirty() && !(await confirmDialog("Discard unsaved changes?", `Restoring v${n} replaces your unsaved changes.`, { confirmLabel: "Restore", danger: true }))) return;
  try {
    const v = await api.restoreVersion(state.id, n);
    const before = JSON.stringify(state.def);
    state.def = normalize(v.definition);
    state.version = v.number;
    state.saved = JSON.stringify(state.def);
    history.record(before);
    canvas.setSelection([]);
    changed("history");
    toast(`Restored v${n} as version ${v.number}`, "success");
    openHistory();
  } catch (err) {
    toast(`Restore failed: ${err.message}`, "error");
  }
}

$("#btn-history").addEventListener("click", () => ($("#history").hidden ? openHistory() : ($("#history").hidden = true)));
$("#history-close").addEventListener("click", () => { $("#history").hidden = true; });

// ---- runs from the canvas -----------------------------------------------------------------------

let liveRun = null;
const RUN_LABEL = { queued: "queued", running: "running", succeeded: "succeeded", failed: "failed",
  cancelled: "cancelled", timed_out: "timed out", skipped: "skipped" };

// Runs and step tests use the saved version: save first when there are changes.
async function ensureSaved() {
  if (!isDirty()) return true;
  await save();
  return !isDirty();
}

async function runWorkflow() {
  const trigger = state.def.nodes.find((n) => types.get(n.type)?.category === "trigger");
  const sample = trigger?.parameters?.sample_payload;
  const ta = h("textarea", { id: "run-payload", class: "mono", rows: 8, spellcheck: "false", "aria-label": "Payload" });
  ta.value = JSON.stringify(sample ?? {}, null, 2);
  const err = h("div", { class: "field-error" });
  let payload = {};
  const choice = await modal({
    title: "Run workflow",
    body: h("div", { class: "run-dialog" },
      h("p", { class: "muted small" }, "The trigger's body, as JSON (steps read it as ", h("code", {}, "{{ trigger.body }}"), ").",
        isDirty() ? " Your changes are saved first." : ""),
      ta, err),
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "Run", value: "run", kind: "primary" }],
    onSubmit: (value) => {
      if (value !== "run") return true;
      try {
        payload = ta.value.trim() ? JSON.parse(ta.value) : {};
      } catch (e) {
        err.textContent = `Invalid JSON: ${e.message}`;
        return false;
      }
      return true;
    },
  });
  if (choice !== "run") return;
  if (!(await ensureSaved())) { toast("Not run: the workflow could not be saved", "error"); return; }
  $("#btn-run").disabled = true;
  try {
    followRun(await api.startRun(state.id, payload));
  } catch (e) {
    toast(`The run did not start: ${e.message}`, "error");
  } finally {
    $("#btn-run").disabled = false;
  }
}

function followRun(run) {
  if (liveRun) liveRun.close();
  liveRun = new LiveRun(run);
  const link = $("#run-link");
  $("#run-indicator").hidden = false;
  const show = ({ statuses, run: r }) => {
    canvas.setStatuses(statuses);
    link.href = liveRun.page;
    link.dataset.status = r.status;
    link.textContent = `Run ${r.id} · ${RUN_LABEL[r.status] || r.status}`;
  };
  liveRun.addEventListener("statuses", (e) => show(e.detail));
  liveRun.addEventListener("finished", (e) => {
    const ok = e.detail.status === "succeeded";
    toast(`Run ${run.id} ${RUN_LABEL[e.detail.status] || e.detail.status}`, ok ? "success" : "error", { timeout: 2500 });
    stepTools.refresh();
  });
  show({ statuses: liveRun.statuses, run: { id: run.id, status: run.status } });
}

$("#btn-run").addEventListener("click", runWorkflow);
$("#run-clear").addEventListener("click", () => {
  if (liveRun) liveRun.close();
  liveRun = null;
  canvas.setStatuses(null);
  $("#run-indicator").hidden = true;
});

// ---- start -------------------------------------------------------------------------------------

hydrateIcons();
buildPalette();
canvas.render(state.def);
$("#empty-canvas").hidden = state.def.nodes.length > 0;
requestAnimationFrame(() => canvas.fit());
refreshPanel();
updateStatus();
scheduleValidation(0);
document.body.dataset.ready = "true";
