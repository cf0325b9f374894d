// What the user does on the canvas, made into edits of the definition: move, add (dropped from
// the palette), connect and reconnect, delete, and "arrange left to right". The canvas only
// reports; every edit goes through the controller's commit.
import { nodeHeight } from "./canvas.js";
import { canConnect, layeredLayout, makeNode, removeNodes } from "./model.js";
import { toast } from "./ui.js";

export function edits(ed) {
  const { state, types, canvas, $ } = ed;
  const commit = (...args) => ed.commit(...args);

  canvas.addEventListener("select", () => ed.refreshPanel());
  canvas.addEventListener("edgeselect", () => ed.refreshPanel());
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
    // the panel may widen (code steps) and shrink the canvas: keep the new node in view
    const keep = () => canvas.ensureVisible(node.id);
    requestAnimationFrame(keep);
    $("#props").addEventListener("transitionend", keep, { once: true });
    setTimeout(keep, 400);
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

  function tidy() {
    const positions = layeredLayout(state.def, { heightOf: (n) => nodeHeight(types.ports(n.type)) });
    if (commit((d) => { for (const n of d.nodes) n.position = positions[n.id]; })) {
      canvas.fit();
      toast("Arranged left to right — Ctrl+Z to undo", "info", { timeout: 2000 });
    }
  }
  $("#btn-tidy").addEventListener("click", tidy);

  return { addNode, deleteNodes, deleteSelection, tidy };
}
