// Keyboard shortcuts of the editor and the dialog that lists them ("?" or the toolbar's button).
// Shortcuts other than save leave keys alone while the user types in a field, Monaco or a dialog.
import { h, modal } from "./ui.js";

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
      // flatMap: h() flattens its children one level only, so nested arrays would be stringified
      h("dt", {}, keys.flatMap((k, i) => [i ? " + " : "", h("kbd", {}, mac && k === "Ctrl" ? "⌘" : k)])),
      h("dd", { class: "muted" }, text)])),
    buttons: [{ label: "Close", value: "ok", kind: "primary" }],
  });
}

function isTyping(target) {
  return target.closest && (target.closest("input, textarea, select, [contenteditable=true], .monaco-editor, dialog"));
}

export function keyboard(ed) {
  const { state, canvas, $ } = ed;

  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (mod && key === "s") { e.preventDefault(); ed.save(); return; }
    if (isTyping(e.target)) return;
    if (mod && key === "z" && !e.shiftKey) { e.preventDefault(); ed.undo(); }
    else if (mod && ((key === "z" && e.shiftKey) || key === "y")) { e.preventDefault(); ed.redo(); }
    else if (mod && key === "c") { if (ed.copySelection()) e.preventDefault(); }
    else if (mod && key === "x") { if (ed.copySelection()) { e.preventDefault(); ed.deleteSelection(); } }
    else if (mod && key === "v") { e.preventDefault(); ed.paste(); }
    else if (mod && key === "a") { e.preventDefault(); canvas.setSelection(state.def.nodes.map((n) => n.id)); }
    else if (key === "delete" || key === "backspace") { e.preventDefault(); ed.deleteSelection(); }
    else if (key === "?" ) showShortcuts();
    else if (key === "escape") { canvas.setSelection([]); canvas.selectEdge(null); }
    else if (!mod && (key === "+" || key === "=")) canvas.zoomBy(1.2);
    else if (!mod && key === "-") canvas.zoomBy(1 / 1.2);
    else if (!mod && key === "0") canvas.fit();
    else if (!mod && key === "l") ed.tidy();
  });

  $("#btn-shortcuts").addEventListener("click", showShortcuts);
  return {};
}
