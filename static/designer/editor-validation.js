// Validation as you edit: the server checks the definition (debounced; answers about an older
// definition are dropped), problems are marked on the canvas and listed under it, and clicking
// one selects its node or edge.
import { api } from "./api.js";
import { problemTarget } from "./model.js";
import { h } from "./ui.js";

export function validation(ed) {
  const { state, canvas, $ } = ed;
  let timer = null;
  let seq = 0;
  let collapsed = false;

  function scheduleValidation(delay = 500) {
    clearTimeout(timer);
    seq += 1;  // answers for older definitions are dropped
    setValidation("checking");
    timer = setTimeout(runValidation, delay);
  }

  async function runValidation() {
    const mine = ++seq;
    try {
      const res = await api.validate(state.def);
      if (mine !== seq) return;
      showProblems(res.errors || []);
    } catch (err) {
      if (mine !== seq) return;
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
    $("#problems").hidden = state.problems.length === 0 || collapsed;
    setValidation(state.problems.length ? "invalid" : "valid");
    ed.refreshPanel();
  }

  // the problems list shown again, even if the user closed it
  function openProblems() {
    collapsed = false;
    $("#problems").hidden = false;
  }

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
    collapsed = !$("#problems").hidden;
    $("#problems").hidden = collapsed;
  });
  $("#problems-close").addEventListener("click", () => { collapsed = true; $("#problems").hidden = true; });

  return { scheduleValidation, showProblems, openProblems };
}
