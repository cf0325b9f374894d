// Import help for Python code in Monaco: completes `import ` / `from ` with the modules the
// sandbox has (the active runtime's packages + the standard library, from /api/runtime/modules/)
// and marks imports of anything else with a warning before the code runs.
//
//   import { registerImportHelp } from "./imports.js";
//   const help = registerImportHelp(monaco);   // once, after Monaco loaded
//   help.refresh();                             // re-fetch (e.g. after a runtime was activated)
//   help.dispose();
// It also completes os.environ[" and os.getenv(" with the workflow's variable and secret names.

export const MARKER_OWNER = "stepwell-imports";
const MODULES_URL = "/api/runtime/modules/";
const IDENT = "[A-Za-z_][A-Za-z0-9_]*";
const DOTTED = `${IDENT}(?:\\s*\\.\\s*${IDENT})*`;
const IMPORT_RE = new RegExp(`^(\\s*)import\\s+(.*)$`);
const FROM_RE = new RegExp(`^(\\s*)from\\s+(\\.*)(${DOTTED})?\\s+import\\b`);
const ALWAYS_KNOWN = ["__future__", "__main__", "builtins", "sys"];

// Every absolute import in `text`: [{module, top, line (1-based), startColumn, endColumn}].
// Skips comments, relative imports and text inside triple-quoted strings.
export function findImports(text) {
  const out = [];
  const lines = text.split(/\r?\n/);
  let inString = null; // the open triple quote, if any
  lines.forEach((raw, i) => {
    let line = raw;
    // drop triple-quoted string regions (good enough for code steps)
    let scan = "";
    let pos = 0;
    while (pos < line.length) {
      if (inString) {
        const end = line.indexOf(inString, pos);
        if (end < 0) { pos = line.length; break; }
        scan += " ".repeat(end + 3 - pos);
        pos = end + 3;
        inString = null;
      } else {
        const m = line.slice(pos).match(/"""|'''/);
        if (!m) { scan += line.slice(pos); break; }
        scan += line.slice(pos, pos + m.index) + "   ";
        pos += m.index + 3;
        inString = m[0];
      }
    }
    if (inString && !scan.trim()) return;
    line = scan.replace(/#.*$/, "");
    // several statements on one line: `import a; import b`
    let offset = 0;
    for (const stmt of line.split(";")) {
      collect(stmt, i + 1, offset, out);
      offset += stmt.length + 1;
    }
  });
  return out;
}

function collect(stmt, lineNo, offset, out) {
  const fm = stmt.match(FROM_RE);
  if (fm) {
    if (fm[2] || !fm[3]) return; // relative import or incomplete
    const start = stmt.indexOf(fm[3], fm[1].length + 4);
    push(out, fm[3], lineNo, offset + start);
    return;
  }
  const im = stmt.match(IMPORT_RE);
  if (!im) return;
  let cursor = stmt.length - im[2].length; // where the module list starts
  for (const part of im[2].split(",")) {
    const m = part.match(new RegExp(`^(\\s*\\(?\\s*)(${DOTTED})`));
    if (m) push(out, m[2], lineNo, offset + cursor + m[1].length);
    cursor += part.length + 1;
  }
}

function push(out, dotted, line, start0) {
  const module = dotted.replace(/\s+/g, "");
  out.push({ module, top: module.split(".")[0], line, startColumn: start0 + 1, endColumn: start0 + 1 + dotted.length });
}

// Imports in `text` whose top-level module is not in `known` (a Set).
export function unknownImports(text, known) {
  return findImports(text).filter((imp) => !known.has(imp.top));
}

export function registerImportHelp(monaco, { url = MODULES_URL, language = "python", fetchImpl } = {}) {
  const state = { runtimeId: null, packages: [], stdlib: [], known: new Set(ALWAYS_KNOWN), loaded: false };
  const disposables = [];
  const timers = new Map();
  const doFetch = fetchImpl || ((u) => fetch(u, { credentials: "same-origin", headers: { Accept: "application/json" } }));

  async function refresh() {
    try {
      const res = await doFetch(url);
      if (!res.ok) throw new Error(`${res.status}`);
      const data = await res.json();
      state.runtimeId = data.runtime_id;
      state.packages = [...new Set(data.packages || [])].sort();
      state.stdlib = [...new Set(data.stdlib || [])].sort();
      state.known = new Set([...ALWAYS_KNOWN, ...state.packages, ...state.stdlib]);
      state.loaded = true;
    } catch (err) {
      state.loaded = false; // without the list, mark nothing rather than everything
    }
    for (const model of monaco.editor.getModels()) check(model);
    return state;
  }

  function check(model) {
    if (model.isDisposed && model.isDisposed()) return;
    if (model.getLanguageId && model.getLanguageId() !== language) return;
    if (!state.loaded) { monaco.editor.setModelMarkers(model, MARKER_OWNER, []); return; }
    const where = state.runtimeId ? `runtime #${state.runtimeId}` : "the sandbox (no package runtime is active)";
    const markers = unknownImports(model.getValue(), state.known).map((imp) => ({
      severity: monaco.MarkerSeverity.Warning,
      message: `No module named '${imp.top}' in ${where}: it is not on the package allow-list, so this import fails with ModuleNotFoundError. Ask a staff member to add it.`,
      source: "Stepwell",
      code: "unknown-import",
      startLineNumber: imp.line, endLineNumber: imp.line, startColumn: imp.startColumn, endColumn: imp.endColumn,
    }));
    monaco.editor.setModelMarkers(model, MARKER_OWNER, markers);
  }

  function watch(model) {
    if (model.getLanguageId && model.getLanguageId() !== language) return;
    check(model);
    disposables.push(model.onDidChangeContent(() => {
      clearTimeout(timers.get(model));
      timers.set(model, setTimeout(() => check(model), 250));
    }));
  }

  disposables.push(monaco.languages.registerCompletionItemProvider(language, {
    triggerCharacters: [" ", ".", ","],
    provideCompletionItems(model, position) {
      const before = model.getValueInRange({ startLineNumber: position.lineNumber, startColumn: 1, endLineNumber: position.lineNumber, endColumn: position.column });
      const m = before.match(/^\s*(?:from\s+|import\s+(?:[\w.]+\s*(?:as\s+\w+\s*)?,\s*)*)([\w.]*)$/);
      if (!m || /^\s*from\s+\S+\s+import\b/.test(before)) return { suggestions: [] };
      const typed = m[1];
      const word = typed.split(".").pop();
      const range = { startLineNumber: position.lineNumber, endLineNumber: position.lineNumber,
                      startColumn: position.column - word.length, endColumn: position.column };
      if (typed.includes(".")) return { suggestions: [] }; // submodules: not listed
      const K = monaco.languages.CompletionItemKind;
      const item = (name, detail, sort) => ({ label: name, kind: K.Module, insertText: name, detail, range, sortText: `${sort}${name}` });
      return {
        suggestions: [
          ...state.packages.map((n) => item(n, state.runtimeId ? `package · runtime #${state.runtimeId}` : "package", "0")),
          ...state.stdlib.map((n) => item(n, "standard library", "1")),
        ],
      };
    },
  }));

  // os.environ[" / os.environ.get(" / os.getenv(" complete with the workflow's variable and
  // secret names (the editor page exposes its definition as window.stepwell.definition)
  disposables.push(monaco.languages.registerCompletionItemProvider(language, {
    triggerCharacters: ['"', "'"],
    provideCompletionItems(model, position) {
      const before = model.getValueInRange({ startLineNumber: position.lineNumber, startColumn: 1, endLineNumber: position.lineNumber, endColumn: position.column });
      const found = envNameCompletions(before, window.stepwell?.definition?.settings);
      if (!found) return { suggestions: [] };
      const range = { startLineNumber: position.lineNumber, endLineNumber: position.lineNumber,
                      startColumn: position.column - found.typed.length, endColumn: position.column };
      const K = monaco.languages.CompletionItemKind;
      return { suggestions: found.names.map((n) => ({ label: n.name, kind: n.secret ? K.Constant : K.Variable,
        insertText: n.name, detail: n.secret ? "secret (masked in output)" : "workflow variable", range, sortText: n.name })) };
    },
  }));

  for (const model of monaco.editor.getModels()) watch(model);
  disposables.push(monaco.editor.onDidCreateModel(watch));
  disposables.push(monaco.editor.onWillDisposeModel((model) => { clearTimeout(timers.get(model)); timers.delete(model); }));
  const ready = refresh();

  return {
    ready,
    refresh,
    check,
    get known() { return state.known; },
    dispose() {
      for (const d of disposables) d.dispose();
      for (const t of timers.values()) clearTimeout(t);
      for (const model of monaco.editor.getModels()) monaco.editor.setModelMarkers(model, MARKER_OWNER, []);
    },
  };
}

// The names to offer after `os.environ["`, `os.environ.get("` or `os.getenv("` in `before` (the
// line up to the cursor): {typed, names: [{name, secret}]}, or null when the cursor is elsewhere.
export function envNameCompletions(before, settings) {
  const m = before.match(/\bos\s*\.\s*(?:environ\s*\[|environ\s*\.\s*get\s*\(|getenv\s*\()\s*["']([A-Za-z0-9_]*)$/);
  if (!m) return null;
  const seen = new Map();
  for (const v of settings?.variables || []) if (v?.name) seen.set(v.name, false);
  for (const name of settings?.secrets || []) if (name) seen.set(name, true);
  const names = [...seen].map(([name, secret]) => ({ name, secret }))
    .filter((n) => n.name.startsWith(m[1])).sort((a, b) => a.name.localeCompare(b.name));
  return { typed: m[1], names };
}
