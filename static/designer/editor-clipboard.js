// Copy, cut and paste of nodes: the copied nodes (with the edges between them) are kept in
// localStorage too, so they paste into another workflow's tab; each paste lands a little further
// off, with new ids.
import { copyNodes, pasteNodes } from "./model.js";
import { toast } from "./ui.js";

const CLIP_KEY = "stepwell.clipboard";

export function clipboard(ed) {
  const { state, canvas } = ed;
  let copied = null;
  let pasteCount = 0;

  // false when nothing is selected (the browser's own copy then goes ahead)
  function copySelection() {
    if (!canvas.selection.size) return false;
    copied = copyNodes(state.def, [...canvas.selection]);
    pasteCount = 0;
    try { localStorage.setItem(CLIP_KEY, JSON.stringify(copied)); } catch { /* private mode */ }
    toast(`Copied ${copied.nodes.length} node${copied.nodes.length > 1 ? "s" : ""}`, "info", { timeout: 1500 });
    return true;
  }

  function paste() {
    let clip = copied;
    try {
      const stored = JSON.parse(localStorage.getItem(CLIP_KEY) || "null");
      if (stored && stored.kind === "stepwell.clipboard/v1") clip = stored;
    } catch { /* ignore */ }
    if (!clip || !clip.nodes.length) return;
    pasteCount += 1;
    const off = 40 * pasteCount;
    let ids = [];
    ed.commit((d) => { ids = pasteNodes(d, clip, { x: off, y: off }); });
    canvas.setSelection(ids);
  }

  return { copySelection, paste };
}
