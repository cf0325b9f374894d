// Validation as you edit: the server checks the definition (debounced; answers about an older
// definition are dropped), problems are marked on the canvas and listed under it, and clicking
// one selects its node or edge. An error answer (a definition too large to send) is listed with
// the server's message.
import { api, ApiError } from "./api.js";
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
      // an answer in the API's error shape (e.g. 413, too large): its message, as a problem
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.errors.length) showProblems(withLocal(err.errors));
      else setValidation("unknown");
    }
  }

  // Code steps over the node type's maxLength: when the whole definition is too large to send,
  // the server cannot say which step it is, so the editor says it (same path and words).
  function codeTooLong() {
    const limit = ed.types.get("action.python")?.parameters_schema?.properties?.code?.maxLength;
    if (!limit) return [];
    return state.def.nodes.flatMap((n, i) => {
      const len = n.type === "action.python" ? String(n.parameters?.code ?? "").length : 0;
      return len > limit ? [{ path: `$.nodes[${i}].parameters.code`, node_id: n.id,
        message: `is ${len.toLocaleString("en")} characters long; the limit is ${limit.toLocaleString("en")} (a code step's code)` }] : [];
    });
  }

  function withLocal(errors) {
    return [...errors, ...codeTooLong()];
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

  return { scheduleValidation, showProblems, openProblems, withLocalProblems: withLocal };
}
