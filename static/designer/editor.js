// Editor page controller: owns the definition and its undo/redo, and wires the canvas, the
// properties panel and the editor's parts together. Every change goes through commit(mutate):
// clone, mutate, record the old snapshot, re-render.
//
// The parts (each a function of the controller's context `ed`, returning what it offers the
// others, which the controller merges into `ed`):
//   editor-edits.js       canvas events made into edits (move, add, connect, delete, arrange)
//   editor-clipboard.js   copy, cut and paste of nodes
//   editor-validation.js  validation as you edit and the problems list
//   editor-save.js        saving a new version, "save first", renaming, the unsaved-changes guard
//   editor-versions.js    the version history drawer (view, restore)
//   editor-json.js        the JSON view of the definition
//   editor-runs.js        running the workflow from the editor and following the run
//   editor-palette.js     the palette of node types
//   editor-keyboard.js    keyboard shortcuts and their help dialog
//   editor-egress.js      URLs in code steps not on the allow-list: warning and "Allow this host"
//
// Other modules (plain ES modules, no bundler):
//   model.js    the definition JSON (the API's format) and pure helpers over it; node types by key
//   canvas.js   renders a definition with AntV X6 and turns X6's interaction into events; never
//               mutates the definition
//   live-run.js a run started from the editor, followed over ws/runs/<id>/ (node statuses)
//   step-tools.js  the field picker and "Test step" / pinned outputs of the properties panel
//   panel.js    properties form generated from a node type's parameters schema
//   monaco.js   the only place that loads Monaco (AMD build from <static>/vendor/monaco/vs)
//   history.js  undo/redo over JSON snapshots
//   api.js      REST client (CSRF, one error type); ui.js toasts/dialogs; icons.js inline SVG

import { Canvas } from "./canvas.js";
import { History } from "./history.js";
import { NodeTypes, clone, normalize } from "./model.js";
import { PropertiesPanel } from "./panel.js";
import { StepTools } from "./step-tools.js";
import { hydrateIcons } from "./icons.js";
import { clipboard } from "./editor-clipboard.js";
import { edits } from "./editor-edits.js";
import { egress } from "./editor-egress.js";
import { jsonView } from "./editor-json.js";
import { keyboard } from "./editor-keyboard.js";
import { palette } from "./editor-palette.js";
import { runs } from "./editor-runs.js";
import { saving } from "./editor-save.js";
import { validation } from "./editor-validation.js";
import { versions } from "./editor-versions.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const types = new NodeTypes(boot.nodeTypes);
const $ = (sel) => document.querySelector(sel);

const state = {
  id: boot.workflow.id,
  name: boot.workflow.name,
  version: boot.workflow.version,
  def: normalize(boot.workflow.definition),
  saved: null,
  problems: [],
  saving: false,
};
state.saved = JSON.stringify(state.def);
const history = new History();

// ---- canvas & panel --------------------------------------------------------------------------

const canvas = new Canvas($("#canvas"), types);
// what the parts share; each part adds its own functions (see the header)
const ed = { boot, types, state, history, canvas, $, commit, changed, isDirty, updateStatus, refreshPanel, undo, redo };
const stepTools = new StepTools({
  workflowId: boot.workflow.id, types,
  getDefinition: () => state.def,
  savedNode: (id) => JSON.parse(state.saved).nodes.find((n) => n.id === id) || null,
  ensureSaved: () => ed.ensureSaved(),
});
ed.stepTools = stepTools;
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
  onDelete: (ids) => ed.deleteNodes(ids || [...canvas.selection]),
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
  save: () => ed.save(), undo: () => undo(), redo: () => redo(),
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
  ed.scheduleValidation();
  ed.jsonChanged(source);
  ed.egressChanged();
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

function isDirty() {
  return JSON.stringify(state.def) !== state.saved;
}

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

// ---- parts and toolbar -----------------------------------------------------------------------

for (const part of [edits, clipboard, validation, saving, versions, jsonView, runs, keyboard, egress]) Object.assign(ed, part(ed));

$("#btn-undo").addEventListener("click", undo);
$("#btn-redo").addEventListener("click", redo);
$("#zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
$("#zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
$("#zoom-fit").addEventListener("click", () => canvas.fit());
$("#zoom-level").addEventListener("click", () => canvas.zoomAt(1));

// ---- start -------------------------------------------------------------------------------------

hydrateIcons();
palette(ed);
canvas.render(state.def);
$("#empty-canvas").hidden = state.def.nodes.length > 0;
requestAnimationFrame(() => canvas.fit());
refreshPanel();
updateStatus();
ed.scheduleValidation(0);
document.body.dataset.ready = "true";
