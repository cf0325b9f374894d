// Python syntax check as you type: the server compiles a code step's code with the sandbox's
// Python (POST /api/python/check/; debounced, answers cached by code). Errors become markers in
// the code editor with a line under it, and they block a run or a step test (never a save) with
// a message naming the step and the line. Also sets the code editor's Enter rule: with the
// suggestion list open, Enter inserts a new line when the suggestion would change nothing
// (`import os` typed in full), and accepts the suggestion otherwise.
import { ApiError, request } from "./api.js";
import { h, toast } from "./ui.js";

const OWNER = "stepwell-syntax";   // Monaco marker owner
const DEBOUNCE_MS = 350;
const CACHE_SIZE = 64;

export function syntaxCheck(ed) {
  const { state, canvas } = ed;
  const cache = new Map();   // code -> Promise<[{line, column, end_line, end_column, message}]>

  function check(code) {
    if (cache.has(code)) return cache.get(code);
    const answer = request("POST", "/api/python/check/", { code })
      .then((res) => res.errors || [])
      .catch((err) => {
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
          // too long, too large: the server's own words, on the first line
          return [{ line: 1, column: 1, end_line: 1, end_column: 2, message: err.message }];
        }
        cache.delete(code);   // the server could not be asked: ask again next time
        return [];
      });
    cache.set(code, answer);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
    return answer;
  }

  // [{node, line, column, message}] of the code steps in the editor's definition (or one of them)
  async function problems(nodeId = null) {
    const nodes = state.def.nodes.filter((n) => n.type === "action.python" && (!nodeId || n.id === nodeId));
    const found = await Promise.all(nodes.map(async (n) => (await check(String(n.parameters?.code ?? "")))
      .map((e) => ({ node: n, ...e }))));
    return found.flat();
  }

  // Shows why `what` ("run", "test") cannot go ahead; returns true when it is blocked.
  async function blocked(what, nodeId = null) {
    const [first, ...more] = await problems(nodeId);
    if (!first) return false;
    const name = first.node.name || first.node.id;
    toast(`Not ${what === "run" ? "run" : "tested"}: “${name}” has a syntax error at line ${first.line}`, "error", {
      details: [first.message, ...more.slice(0, 2).map((p) => `${p.node.name || p.node.id}, line ${p.line}: ${p.message}`)],
    });
    if (canvas.selection.size !== 1 || !canvas.selection.has(first.node.id)) {
      canvas.setSelection([first.node.id]);
      canvas.centerOn(first.node.id);
    }
    return true;
  }

  // ---- the code editor: markers, the line under it, the Enter rule ----------------------------

  function attach(host) {
    const editor = window.stepwell?.monaco;
    const monaco = window.monaco;
    if (!editor || !monaco || host.dataset.syntax === "on" || editor.getModel()?.getLanguageId() !== "python") return;
    host.dataset.syntax = "on";
    editor.updateOptions({ acceptSuggestionOnEnter: "smart" });
    const line = h("div", { class: "syntax-status small", id: "syntax-status", role: "status", "aria-live": "polite" });
    host.after(line);
    let timer = null;
    let seq = 0;
    const run = async () => {
      const model = editor.getModel();
      if (!model || model.isDisposed()) return;
      const mine = ++seq;
      const errors = await check(model.getValue());
      if (mine !== seq || model.isDisposed()) return;
      monaco.editor.setModelMarkers(model, OWNER, errors.map((e) => ({
        severity: monaco.MarkerSeverity.Error, message: e.message,
        startLineNumber: e.line, startColumn: e.column, endLineNumber: e.end_line, endColumn: e.end_column,
      })));
      line.dataset.state = errors.length ? "error" : "ok";
      line.textContent = errors.length ? `Line ${errors[0].line}: ${errors[0].message}` : "";
      line.hidden = !errors.length;
    };
    editor.onDidChangeModelContent(() => { clearTimeout(timer); timer = setTimeout(run, DEBOUNCE_MS); });
    run();
  }

  document.addEventListener("monaco-ready", (e) => attach(e.target));

  // ---- a run is blocked by a syntax error (the Run button's own handler never sees the click) --
  let passing = false;
  document.addEventListener("click", async (e) => {
    const btn = e.target.closest?.("#btn-run");
    if (!btn || passing) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (btn.dataset.checking === "true") return;
    btn.dataset.checking = "true";
    try {
      if (await blocked("run")) return;
    } finally {
      delete btn.dataset.checking;
    }
    passing = true;
    try { btn.click(); } finally { passing = false; }
  }, true);

  return { syntaxProblems: problems, syntaxBlocked: blocked };
}
