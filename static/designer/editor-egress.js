// Egress help in the code editor: http(s) URLs written as string literals in a code step whose
// host:port the workflow's allow-list (settings.allowed_hosts, narrowed by the step's own
// allowed_hosts when it has one) does not let through get a warning, and hovering one offers
// "Allow this host", which adds the host to the list(s) through the controller's commit (so it
// can be undone, marks the workflow unsaved and shows in the settings panel).
//
//   findUrls(text), urlProblems(text, workflowHosts, stepHosts)   pure, used by the tests
//   registerEgressHelp(monaco, {context, allow})                   hover, quick fix and markers
//   egress(ed)                                                     the editor part (editor.js)

import { entryFor, listed, shown } from "./egress-hosts.js";

export const MARKER_OWNER = "stepwell-egress";
export const MARKER_CODE = "egress-not-allowed";
export const ALLOW_COMMAND = "stepwell.egress.allowHost";
const PREFIXES = new Set(["r", "u", "b", "f", "br", "rb", "fr", "rf"]);
const WORD = /[A-Za-z0-9_]+/y;
// a host name (letters, digits, dots, hyphens, underscores) or, in brackets, an IPv6 address
const HOST_NAME = /^[\p{L}\p{N}._-]+$/u;
const HOST_V6 = /^[0-9a-f:.]+(%[\w.-]+)?$/i;

// Every string literal in Python `text` whose value starts with http:// or https:// and names
// its host literally (in an f-string, no `{` before the path): [{url, scheme, host, port, line,
// startColumn, endColumn}], columns 1-based over the URL itself (the literal's quotes excluded).
export function findUrls(text) {
  const out = [];
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") lineStarts.push(i + 1);
  const where = (offset) => {
    let lo = 0, hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= offset) lo = mid; else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - lineStarts[lo] + 1 };
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "#") {                                   // a comment, to the end of the line
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
      continue;
    }
    let prefix = null;
    if (/[A-Za-z0-9_]/.test(c)) {                      // a name or a number: maybe a string prefix
      WORD.lastIndex = i;
      const word = WORD.exec(text)[0];
      i += word.length;
      const next = text[i];
      if ((next !== '"' && next !== "'") || !PREFIXES.has(word.toLowerCase())) continue;
      prefix = word.toLowerCase();
    }
    const q = text[i];
    if (q !== '"' && q !== "'") { i += 1; continue; }
    const triple = text.startsWith(q.repeat(3), i);
    const quote = triple ? q.repeat(3) : q;
    const start = i + quote.length;
    let j = start;
    let end = -1;
    while (j < text.length) {
      if (text[j] === "\\") { j += 2; continue; }
      if (!triple && text[j] === "\n") break;         // unterminated: stop at the line's end
      if (text.startsWith(quote, j)) { end = j; break; }
      j += 1;
    }
    const stop = end < 0 ? j : end;
    const found = parseUrl(text.slice(start, stop), (prefix || "").includes("f"));
    if (found) {
      const a = where(start);
      out.push({ ...found, line: a.line, startColumn: a.column, endColumn: a.column + found.url.length });
    }
    i = end < 0 ? stop : end + quote.length;
  }
  return out;
}

// {url, scheme, host, port} of a string value that starts with an http(s) URL whose host and
// port are written out, or null.
function parseUrl(value, fstring) {
  const m = /^(https?):\/\/([^\s/?#\\"']*)/i.exec(value);
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  let authority = m[2];
  if (fstring && authority.includes("{")) return null;  // the host or port is computed
  authority = authority.slice(authority.lastIndexOf("@") + 1);
  let host, portText = "";
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return null;
    host = authority.slice(1, close);
    if (!HOST_V6.test(host)) return null;
    const rest = authority.slice(close + 1);
    if (rest && !rest.startsWith(":")) return null;
    portText = rest.slice(1);
  } else {
    const colon = authority.indexOf(":");
    host = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? "" : authority.slice(colon + 1);
    if (!HOST_NAME.test(host)) return null;
  }
  let port = scheme === "https" ? 443 : 80;
  if (portText) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return null;
    port = Number(portText);
  }
  const url = /^[^\s"'\\]*/.exec(value)[0];
  return { url, scheme, host: host.toLowerCase(), port };
}

// The URLs of `text` that the lists do not let through, each with the lists missing it
// (`missing`: "workflow" and/or "step"), the entry that would let it through and the message.
// `stepHosts` null: the step has no list of its own.
export function urlProblems(text, workflowHosts, stepHosts = null) {
  const out = [];
  for (const u of findUrls(text)) {
    const missing = [];
    if (!listed(workflowHosts || [], u.host, u.port)) missing.push("workflow");
    if (Array.isArray(stepHosts) && !listed(stepHosts, u.host, u.port)) missing.push("step");
    if (!missing.length) continue;
    const name = shown(u.host, u.port);
    const lists = missing.length === 2 ? "this workflow's allow-list nor on this step's allowed_hosts"
      : missing[0] === "workflow" ? "this workflow's allow-list" : "this step's allowed_hosts";
    const message = missing.length === 2
      ? `${name} is neither on ${lists}: the sandbox refuses this request.`
      : `${name} is not on ${lists}: the sandbox refuses this request.`;
    out.push({ ...u, missing, entry: entryFor(u.host, u.port), message });
  }
  return out;
}

// Registers, once, the hover ("Allow this host" link), the quick fix and the markers for the
// models that `context(model)` knows: it returns {workflowHosts, stepHosts} or null (not a code
// step). `allow(model, problem)` makes the edit. Returns {check(model), dispose()}.
export function registerEgressHelp(monaco, { context, allow, language = "python" }) {
  const problems = new Map();   // model uri → the problems its markers show
  const disposables = [];

  function check(model) {
    if (!model || (model.isDisposed && model.isDisposed())) return;
    const ctx = context(model);
    const found = ctx ? urlProblems(model.getValue(), ctx.workflowHosts, ctx.stepHosts) : [];
    problems.set(model.uri.toString(), found);
    monaco.editor.setModelMarkers(model, MARKER_OWNER, found.map((p) => ({
      severity: monaco.MarkerSeverity.Warning,
      message: p.message,
      source: "Stepwell",
      code: MARKER_CODE,
      startLineNumber: p.line, endLineNumber: p.line, startColumn: p.startColumn, endColumn: p.endColumn,
    })));
  }

  const at = (model, line, column) => (problems.get(model.uri.toString()) || []).find(
    (p) => p.line === line && p.startColumn <= column && column <= p.endColumn);

  function target(p) {
    return p.missing.length === 2 ? "the workflow's allow-list and this step's allowed_hosts"
      : p.missing[0] === "workflow" ? "the workflow's allow-list (settings.allowed_hosts)" : "this step's allowed_hosts";
  }

  disposables.push(monaco.editor.registerCommand(ALLOW_COMMAND, (_accessor, uri, line, column) => {
    const model = monaco.editor.getModel(monaco.Uri.parse(uri));
    const p = model && at(model, line, column);
    if (!p) return;
    allow(model, p);
    check(model);
  }));

  disposables.push(monaco.languages.registerHoverProvider(language, {
    provideHover(model, position) {
      const p = at(model, position.lineNumber, position.column);
      if (!p) return null;
      const args = encodeURIComponent(JSON.stringify([model.uri.toString(), p.line, p.startColumn]));
      return {
        range: new monaco.Range(p.line, p.startColumn, p.line, p.endColumn),
        contents: [{
          value: `[Allow this host](command:${ALLOW_COMMAND}?${args}) — adds \`${p.entry}\` to ${target(p)}.`,
          isTrusted: true,
        }],
      };
    },
  }));

  disposables.push(monaco.languages.registerCodeActionProvider(language, {
    provideCodeActions(model, range, ctx) {
      const actions = [];
      for (const marker of ctx.markers) {
        if (marker.code !== MARKER_CODE) continue;
        const p = at(model, marker.startLineNumber, marker.startColumn);
        if (!p) continue;
        actions.push({
          title: `Allow this host (add ${p.entry} to ${target(p)})`,
          kind: "quickfix", diagnostics: [marker], isPreferred: true,
          command: { id: ALLOW_COMMAND, title: "Allow this host", arguments: [model.uri.toString(), p.line, p.startColumn] },
        });
      }
      return { actions, dispose() {} };
    },
  }, { providedCodeActionKinds: ["quickfix"] }));

  disposables.push(monaco.editor.onWillDisposeModel((model) => problems.delete(model.uri.toString())));

  return {
    check,
    dispose() {
      for (const d of disposables) d.dispose();
      for (const model of monaco.editor.getModels()) monaco.editor.setModelMarkers(model, MARKER_OWNER, []);
      problems.clear();
    },
  };
}

// The editor part: binds each code editor the properties panel opens ("monaco-ready") to its
// node, checks it when the code or the definition changes (debounced), and allows a host through
// the controller's commit.
export function egress(ed) {
  const { state, canvas } = ed;
  const nodeOf = new Map();   // model uri → node id
  let help = null;
  let timer = null;

  const node = (def, id) => (def.nodes || []).find((n) => n.id === id);

  function context(model) {
    const n = node(state.def, nodeOf.get(model.uri.toString()));
    if (!n || n.type !== "action.python") return null;
    const own = n.parameters?.allowed_hosts;
    return { workflowHosts: state.def.settings?.allowed_hosts || [], stepHosts: Array.isArray(own) ? own : null };
  }

  function allow(model, p) {
    const id = nodeOf.get(model.uri.toString());
    ed.commit((d) => {
      if (p.missing.includes("workflow")) {
        d.settings = d.settings || {};
        const list = (d.settings.allowed_hosts = d.settings.allowed_hosts || []);
        if (!listed(list, p.host, p.port)) list.push(p.entry);
      }
      const n = node(d, id);
      if (p.missing.includes("step") && n && Array.isArray(n.parameters?.allowed_hosts)
          && !listed(n.parameters.allowed_hosts, p.host, p.port)) n.parameters.allowed_hosts.push(p.entry);
    }, { source: "egress" });
  }

  function checkAll() {
    clearTimeout(timer);
    timer = null;
    if (!help) return;
    for (const uri of nodeOf.keys()) {
      const model = window.monaco.editor.getModel(window.monaco.Uri.parse(uri));
      if (model) help.check(model);
    }
  }

  document.addEventListener("monaco-ready", () => {
    const editor = window.stepwell && window.stepwell.monaco;
    const model = editor && editor.getModel();
    if (!model || canvas.selection.size !== 1 || !window.monaco) return;
    const monaco = window.monaco;
    if (!help) {
      help = registerEgressHelp(monaco, { context, allow });
      monaco.editor.onWillDisposeModel((m) => nodeOf.delete(m.uri.toString()));
      window.stepwell.egressHelp = help;
    }
    nodeOf.set(model.uri.toString(), [...canvas.selection][0]);
    help.check(model);
  });

  return {
    // the definition changed (code, settings, a step's list, undo): check again shortly
    egressChanged() {
      if (!help || !nodeOf.size) return;
      clearTimeout(timer);
      timer = setTimeout(checkAll, 250);
    },
  };
}
