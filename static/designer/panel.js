// The properties panel: a form generated from the selected node type's parameters schema.
// It reports edits through `onEdit(nodeId, mutate, mergeKey)`; it never holds the definition.

import { h } from "./ui.js";
import { setIcon } from "./icons.js";
import { createEditor, setValue } from "./monaco.js";
import { attachMappingHelp } from "./field-picker.js";
import { nodeDataSection } from "./node-data.js";
import { hookSection } from "./trigger-panel.js";

const RETRY_FIELDS = [
  { key: "max_attempts", label: "Max attempts", min: 1, max: 10, step: 1, hint: "1–10" },
  { key: "backoff_s", label: "Backoff (s)", min: 0, max: 3600, step: "any", hint: "0–3600" },
  { key: "backoff_factor", label: "Backoff factor", min: 1, max: 10, step: "any", hint: "1–10" },
];

function kindOf(spec) {
  if (spec.enum) return "enum";
  if (spec.type === "string") return "string";
  if (spec.type === "number" || spec.type === "integer") return "number";
  if (spec.type === "object" || spec.type === "array") return "json";
  return "any";
}

function label(key) {
  return key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()).replace(/ s$/, " (s)").replace(/ mib$/i, " (MiB)");
}

export class PropertiesPanel {
  // onEdit(nodeId, mutate(node), mergeKey); onEditSettings(mutate(settings), mergeKey); onDelete(ids?)
  // tools: StepTools (field picker, step tests), optional
  constructor(root, types, { onEdit, onEditSettings, onDelete, tools = null }) {
    this.root = root;
    this.tools = tools;
    this.types = types;
    this.onEdit = onEdit;
    this.onEditSettings = onEditSettings;
    this.onDelete = onDelete;
    this.nodeId = null;
    this.fields = [];     // [{sync(node)}]
    this.monaco = null;
  }

  // Called with the selected node (or null), the selection size, the node's problems and the
  // definition (for the workflow settings and the list of possible parents).
  show(node, count, problems = [], def = null) {
    this.def = def;
    if (!node) {
      this.nodeId = null;
      if (count === 0 && def) this.showSettings(def.settings || {});
      else this.showEmpty(count);
      return;
    }
    if (node.id === this.nodeId && this.root.querySelector(".props-form")) {
      this.sync(node, problems);
      return;
    }
    this.build(node, problems);
  }

  // Workflow-level settings, shown when nothing is selected.
  showSettings(settings) {
    const form = this.root.querySelector(".settings-form");
    if (form && form.contains(document.activeElement)) return;  // don't rebuild under the cursor
    this._disposeMonaco();
    this.root.classList.remove("props-wide", "props-xwide");
    this.fields = [];
    const edit = (mutate, key) => this.onEditSettings(mutate, key);
    const num = (key, text, min, max, hint) => {
      const input = h("input", { type: "number", id: `setting-${key}`, min, max, step: key.endsWith("_s") ? "any" : 1,
        placeholder: hint, value: settings[key] ?? "" });
      input.addEventListener("input", () => edit((st) => {
        if (input.value === "" || Number.isNaN(Number(input.value))) delete st[key]; else st[key] = Number(input.value);
      }, `settings:${key}`));
      return this._row(text, input, false);
    };
    const hosts = h("textarea", { id: "setting-hosts", rows: 3, class: "mono", placeholder: "api.example.com\n*.example.org", spellcheck: "false" });
    hosts.value = (settings.allowed_hosts || []).join("\n");
    hosts.addEventListener("input", () => edit((st) => {
      st.allowed_hosts = hosts.value.split("\n").map((x) => x.trim()).filter(Boolean);
    }, "settings:hosts"));

    const secretNames = h("textarea", { id: "setting-secrets", rows: 2, class: "mono", placeholder: "API_TOKEN", spellcheck: "false" });
    secretNames.value = (settings.secrets || []).join("\n");
    secretNames.addEventListener("input", () => edit((st) => {
      const names = [...new Set(secretNames.value.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
      if (names.length) st.secrets = names; else delete st.secrets;
    }, "settings:secrets"));

    const isolation = h("select", { id: "setting-isolation" },
      h("option", { value: "execution" }, "A fresh VM per execution"),
      h("option", { value: "workflow" }, "VMs reused for this workflow version (faster)"));
    isolation.value = settings.isolation || "execution";
    isolation.addEventListener("change", () => edit((st) => {
      if (isolation.value === "execution") delete st.isolation; else st.isolation = isolation.value;
    }, "settings:isolation"));

    const vars = h("div", { class: "vars" });
    const renderVars = (list) => {
      vars.replaceChildren(...list.map((v, i) => {
        const name = h("input", { type: "text", class: "mono", placeholder: "NAME", value: v.name, "aria-label": "Variable name" });
        const value = h("input", { type: "text", placeholder: "value", value: v.value, "aria-label": "Variable value" });
        const upd = () => edit((st) => { st.variables[i] = { name: name.value, value: value.value }; }, `settings:var:${i}`);
        name.addEventListener("input", upd);
        value.addEventListener("input", upd);
        return h("div", { class: "var-row" }, name, value,
          h("button", { type: "button", class: "icon-btn", title: "Remove variable", "aria-label": "Remove variable",
            onclick: () => { edit((st) => { st.variables.splice(i, 1); }); renderVars(this._def().settings?.variables || []); } }, "×"));
      }));
    };
    renderVars(settings.variables || []);
    const addVar = h("button", { type: "button", class: "btn btn-sm", onclick: () => {
      edit((st) => { st.variables = [...(st.variables || []), { name: "", value: "" }]; });
      renderVars(this._def().settings?.variables || []);
      vars.querySelector(".var-row:last-child input")?.focus();
    } }, "+ Add variable");

    this.root.replaceChildren(h("div", { class: "settings-form" },
      h("div", { class: "props-header cat-unknown" },
        h("span", { class: "props-icon" }, "⚙"),
        h("div", {}, h("div", { class: "props-type" }, "Workflow settings"),
          h("div", { class: "props-desc muted" }, "Select a node on the canvas to edit its name, parameters and retry policy."))),
      h("section", { class: "props-section" }, h("h4", {}, "Defaults for Python steps"),
        h("div", { class: "retry-grid two" },
          num("default_timeout_s", "Timeout (s)", 0, 600, "≤ 600"),
          num("default_memory_mib", "Memory (MiB)", 128, 8192, "128–8192")),
        this._row("Isolation (each execution runs in a fresh process either way)", isolation)),
      h("section", { class: "props-section" }, h("h4", {}, "Allowed hosts"),
        this._row("Hosts HTTP steps may call, one per line", hosts)),
      h("section", { class: "props-section" }, h("h4", {}, "Variables"),
        h("p", { class: "muted small" }, "Available to steps as {{ vars.NAME }}."), vars, h("div", {}, addVar)),
      h("section", { class: "props-section" }, h("h4", {}, "Secrets"),
        h("p", { class: "muted small" }, "Names of your secrets (managed on the ",
          h("a", { href: "/secrets/", target: "_blank", rel: "noopener" }, "Secrets page"),
          ") this workflow uses: code steps read os.environ[\"NAME\"], HTTP calls {{ secrets.NAME }}. Values are masked in run records."),
        this._row("One name per line", secretNames))));
  }

  _disposeMonaco() {
    if (this.monaco) {
      this.monaco.dispose();
      this.monaco = null;
      if (window.stepwell) window.stepwell.monaco = null;
    }
  }

  showEmpty(count) {
    this._disposeMonaco();
    this.root.classList.remove("props-wide", "props-xwide");
    this.fields = [];
    this.root.replaceChildren(h("div", { class: "props-empty" },
      setIcon(h("div", { class: "props-empty-icon" }), count > 1 ? "layers" : "pointer"),
      count > 1
        ? [h("h3", {}, `${count} nodes selected`),
           h("p", { class: "muted" }, "Copy them with Ctrl+C, delete them with Delete, or drag to move them together."),
           h("button", { class: "btn btn-danger-ghost", type: "button", onclick: () => this.onDelete() }, "Delete selected")]
        : [h("h3", {}, "No node selected"),
           h("p", { class: "muted" }, "Select a node on the canvas to edit its name, parameters and retry policy.")]));
  }

  build(node, problems) {
    this._disposeMonaco();
    this.nodeId = node.id;
    this.fields = [];
    const type = this.types.get(node.type);
    const edit = (mutate, key) => this.onEdit(node.id, mutate, key);

    const header = h("div", { class: `props-header cat-${type ? type.category : "unknown"}` },
      setIcon(h("span", { class: "props-icon" }), node.type, type ? type.icon : "?"),
      h("div", {},
        h("div", { class: "props-type" }, type ? type.label : node.type),
        h("div", { class: "props-desc muted" }, type ? type.description : "This node type is unknown to the server.")),
      h("button", { class: "icon-btn", type: "button", title: "Delete node", "aria-label": "Delete node",
        onclick: () => this.onDelete([node.id]) }, setIcon(h("span"), "trash")));

    const problemBox = h("div", { class: "props-problems" });
    this.fields.push({ sync: (_n, probs) => {
      problemBox.replaceChildren(...(probs || []).map((p) => h("div", { class: "props-problem" }, "⚠ ", p.message)));
    } });

    const general = h("section", { class: "props-section" }, h("h4", {}, "General"));
    const nameInput = h("input", { type: "text", id: "prop-name", value: node.name, maxlength: 200 });
    nameInput.addEventListener("input", () => edit((n) => { n.name = nameInput.value; }, `name:${node.id}`));
    this.fields.push({ sync: (n) => { if (document.activeElement !== nameInput) nameInput.value = n.name; } });
    const loops = (this.def?.nodes || []).filter((n) => n.type === "control.foreach" && n.id !== node.id);
    let parentRow = null;
    if (loops.length || node.parent) {
      const sel = h("select", { id: "prop-parent" }, h("option", { value: "" }, "— top level —"),
        loops.map((n) => h("option", { value: n.id }, `${n.name} (${n.id})`)));
      sel.addEventListener("change", () => edit((n) => { if (sel.value) n.parent = sel.value; else delete n.parent; }));
      this.fields.push({ sync: (n) => { sel.value = n.parent || ""; } });
      parentRow = this._row("Runs inside", sel, false, "Steps inside a For each run once per item.");
    }
    general.append(
      this._row("Name", nameInput, true),
      this._row("ID", h("input", { type: "text", id: "prop-id", value: node.id, readonly: true, class: "mono" }), false,
        "Used in {{ mappings }} to refer to this step's output."), ...(parentRow ? [parentRow] : []));

    const params = h("section", { class: "props-section" }, h("h4", {}, "Parameters"));
    const schema = (type && type.parameters_schema) || { properties: {} };
    const required = new Set(schema.required || []);
    const props = Object.entries(schema.properties || {});
    if (!props.length) params.append(h("p", { class: "muted small" }, "This step has no parameters."));
    for (const [key, spec] of props) params.append(this._paramField(node, key, spec, required.has(key), edit));

    const retry = h("section", { class: "props-section" }, h("h4", {}, "Retry policy"));
    const grid = h("div", { class: "retry-grid" });
    for (const f of RETRY_FIELDS) {
      const input = h("input", { type: "number", min: f.min, max: f.max, step: f.step, placeholder: f.hint,
        "data-retry": f.key, value: node.retry?.[f.key] ?? "" });
      input.addEventListener("input", () => edit((n) => {
        const v = input.value === "" ? null : Number(input.value);
        const r = { ...(n.retry || {}) };
        if (v === null || Number.isNaN(v)) delete r[f.key]; else r[f.key] = v;
        if (Object.keys(r).length) n.retry = r; else delete n.retry;
      }, `retry:${node.id}:${f.key}`));
      this.fields.push({ sync: (n) => { if (document.activeElement !== input) input.value = n.retry?.[f.key] ?? ""; } });
      grid.append(h("label", { class: "field" }, h("span", { class: "field-label" }, f.label), input));
    }
    retry.append(grid, h("p", { class: "muted small" }, "Leave empty to use the defaults (no retries)."));

    const notes = h("textarea", { rows: 2, id: "prop-notes", placeholder: "Notes for your team…" });
    notes.value = node.notes || "";
    notes.addEventListener("input", () => edit((n) => { if (notes.value) n.notes = notes.value; else delete n.notes; }, `notes:${node.id}`));
    this.fields.push({ sync: (n) => { if (document.activeElement !== notes) notes.value = n.notes || ""; } });
    const notesSec = h("section", { class: "props-section" }, h("h4", {}, "Notes"), notes);

    let hookSec = null;  // the HTTP trigger's URL, curl line and rotate (trigger-panel.js)
    if (node.type === "trigger.http" && this.tools?.workflowId) {
      const hs = hookSection(node, this.tools.workflowId);
      this.fields.push({ sync: (n) => hs.sync(n) });
      hookSec = hs.el;
    }

    let testSec = null;
    if (this.tools && type && type.category !== "trigger") {
      const t = this.tools.testSection(node);
      this.fields.push({ sync: () => t.sync() });
      testSec = t.el;
    }

    this.root.classList.toggle("props-wide", node.type === "action.python");
    this.root.classList.remove("props-xwide");
    // the node's data in recent runs (node-data.js)
    const dataSec = this.tools ? nodeDataSection(node, { workflowId: this.tools.workflowId, getDefinition: () => this._def(),
      watch: (el, fn) => this.tools._watch(el, fn) }) : null;

    this.root.replaceChildren(h("div", { class: "props-form", "data-node-id": node.id }, header, problemBox, general, params,
      ...(hookSec ? [hookSec] : []), ...(testSec ? [testSec] : []), ...(dataSec ? [dataSec] : []), retry, notesSec));
    this.root.scrollTop = 0;   // another node: its form starts at the top
    this.sync(node, problems);
  }

  sync(node, problems = []) {
    for (const f of this.fields) f.sync(node, problems);
  }

  _row(text, input, req = false, hint = "") {
    return h("label", { class: "field" },
      h("span", { class: "field-label" }, text, req ? h("span", { class: "req", title: "required" }, " *") : null),
      input, hint ? h("span", { class: "field-hint" }, hint) : null);
  }

  _paramField(node, key, spec, req, edit) {
    const kind = kindOf(spec);
    const hint = spec.description || "";
    const id = `param-${key}`;
    const get = (n) => n.parameters?.[key];
    const setParam = (mutValue, mergeKey) => edit((n) => {
      n.parameters = n.parameters || {};
      if (mutValue === undefined) delete n.parameters[key]; else n.parameters[key] = mutValue;
    }, mergeKey ?? `param:${node.id}:${key}`);

    if (key === "code" && node.type === "action.python") {
      const host = h("div", { class: "code-editor", id: "code-editor" }, h("div", { class: "code-loading muted" }, "Loading editor…"));
      const wrap = h("div", { class: "field field-code" },
        h("span", { class: "field-label" }, "Code", req ? h("span", { class: "req" }, " *") : null,
          h("span", { class: "field-tag" }, "Python"),
          h("button", { type: "button", class: "mode-toggle", id: "code-expand", title: "Give the code editor more room",
            onclick: (e) => {
              const on = this.root.classList.toggle("props-xwide");
              e.currentTarget.textContent = on ? "Collapse" : "Expand";
            } }, "Expand")),
        host, h("span", { class: "field-hint" }, "Inputs are in the dict `inputs`; set `result` to produce the output."));
      const nodeId = node.id;
      createEditor(host, {
        value: get(node) ?? "", language: "python",
        onChange: (v) => setParam(v, `code:${nodeId}`),
        onSave: () => document.dispatchEvent(new CustomEvent("stepwell:save")),
      }).then((ed) => {
        if (this.nodeId !== nodeId || !host.isConnected) { ed.dispose(); return; }
        host.querySelector(".code-loading")?.remove();
        // the wheel scrolls the panel once the editor cannot scroll further: Monaco does not see
        // such a wheel event (capture), so the browser scrolls the panel
        ed.updateOptions({ scrollbar: { alwaysConsumeMouseWheel: false }, scrollBeyondLastLine: false });
        host.addEventListener("wheel", (e) => {
          if (Math.abs(e.deltaY) <= Math.abs(e.deltaX) || e.ctrlKey) return;
          const top = ed.getScrollTop(), max = ed.getScrollHeight() - ed.getLayoutInfo().height;
          if ((e.deltaY > 0 && top >= max - 1) || (e.deltaY < 0 && top <= 0)) e.stopPropagation();
        }, { capture: true, passive: true });
        this.monaco = ed;
        window.stepwell = window.stepwell || {};
        window.stepwell.monaco = ed;
        host.dispatchEvent(new CustomEvent("monaco-ready", { bubbles: true }));
      }).catch((err) => {
        host.replaceChildren(h("div", { class: "alert alert-error" }, `Code editor unavailable: ${err.message}`));
      });
      this.fields.push({ sync: (n) => { if (this.monaco) setValue(this.monaco, get(n) ?? ""); } });
      return wrap;
    }

    if (kind === "enum") {
      const sel = h("select", { id, "data-param": key },
        req ? null : h("option", { value: "" }, "— default —"),
        spec.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      sel.addEventListener("change", () => setParam(sel.value === "" ? undefined : JSON.parse(sel.value)));
      this.fields.push({ sync: (n) => { const v = get(n); sel.value = v === undefined ? "" : JSON.stringify(v); } });
      return this._row(label(key), sel, req, hint);
    }
    if (kind === "string") {
      const input = (spec.maxLength ?? 0) > 10000   // long text (an AI agent's prompts): several lines
        ? h("textarea", { id, "data-param": key, rows: 4, maxlength: spec.maxLength, placeholder: spec.default ?? "" })
        : h("input", { type: "text", id, "data-param": key, maxlength: spec.maxLength, placeholder: spec.default ?? "" });
      input.addEventListener("input", () => setParam(input.value === "" && !req ? undefined : input.value));
      this.fields.push({ sync: (n) => { if (document.activeElement !== input) input.value = get(n) ?? ""; } });
      return this._withPicker(this._row(label(key), input, req, hint), node, input);
    }
    if (kind === "number") {
      const lim = [spec.minimum ?? spec.exclusiveMinimum, spec.maximum].map((v) => v ?? "").join("–");
      const input = h("input", { type: "number", id, "data-param": key, min: spec.minimum, max: spec.maximum,
        step: spec.type === "integer" ? 1 : "any", placeholder: lim !== "–" ? lim : "" });
      input.addEventListener("input", () => {
        if (input.value === "") return setParam(undefined);
        const v = Number(input.value);
        if (!Number.isNaN(v)) setParam(v);
      });
      this.fields.push({ sync: (n) => { if (document.activeElement !== input) input.value = get(n) ?? ""; } });
      return this._row(label(key), input, req, hint);
    }

    // "json" (objects) and "any" (mappings: text by default, JSON when the value isn't a string)
    const ta = h("textarea", { id, "data-param": key, rows: 3, class: "mono", spellcheck: "false" });
    const err = h("span", { class: "field-error" });
    let mode = kind === "json" ? "json" : (typeof get(node) === "string" || get(node) === undefined ? "text" : "json");
    const modeBtn = kind === "any" ? h("button", { type: "button", class: "mode-toggle", title: "Switch between plain text and a JSON value" }) : null;
    const show = (v) => {
      ta.dataset.mode = mode;
      if (mode === "text") ta.value = v === undefined ? "" : (typeof v === "string" ? v : JSON.stringify(v));
      else ta.value = v === undefined ? "" : JSON.stringify(v, null, 2);
      if (modeBtn) modeBtn.textContent = mode === "text" ? "Text" : "JSON";
      ta.placeholder = mode === "text" ? "text or {{ mapping }}" : (kind === "json" ? "{ }" : "JSON value");
    };
    const commit = () => {
      err.textContent = "";
      ta.classList.remove("invalid");
      if (ta.value.trim() === "") return setParam(mode === "text" && req ? "" : undefined);
      if (mode === "text") return setParam(ta.value);
      try {
        const v = JSON.parse(ta.value);
        if (kind === "json" && spec.type === "object" && (typeof v !== "object" || v === null || Array.isArray(v))) throw new Error("must be a JSON object");
        setParam(v);
      } catch (e) {
        err.textContent = `Invalid JSON: ${e.message}`;
        ta.classList.add("invalid");
      }
    };
    ta.addEventListener("input", commit);
    if (modeBtn) modeBtn.addEventListener("click", () => {
      // Text → JSON reads the text as JSON when it is (so "200" becomes the number 200);
      // JSON → text keeps strings as they are.
      const v = get(this._current());
      if (mode === "text") {
        mode = "json";
        let parsed = v;
        try { parsed = JSON.parse(ta.value); } catch { /* keep the string */ }
        show(parsed);
      } else {
        mode = "text";
        show(v);
      }
      commit();
    });
    // Not rewritten when it already holds this value (its formatting and caret are kept).
    const holds = (v) => {
      if (mode === "text") return ta.value === (v === undefined ? "" : (typeof v === "string" ? v : JSON.stringify(v)));
      try { return JSON.stringify(JSON.parse(ta.value)) === JSON.stringify(v); } catch { return false; }
    };
    this.fields.push({ sync: (n) => { if (document.activeElement !== ta && !holds(get(n))) show(get(n)); } });
    const row = this._row(label(key), ta, req, hint);
    if (modeBtn) row.querySelector(".field-label").append(modeBtn);
    row.insertBefore(err, row.querySelector(".field-hint"));
    return this._withPicker(row, node, ta);
  }

  // A field picker ({ }) in the label of a field that takes {{ mappings }}.
  _withPicker(row, node, field) {
    if (!this.tools) return row;
    row.querySelector(".field-label").append(this.tools.pickerButton(node.id, field));
    // completion of {{ steps. / {{ trigger., drops from the picker, unknown-field warnings
    attachMappingHelp(field, row, () => this.tools.groups(node.id), (el, fn) => this.tools._watch(el, fn));
    return row;
  }

  _def() {
    return this.getDefinition ? this.getDefinition() : this.def;
  }

  _current() {
    return this.currentNode ? this.currentNode() : null;
  }
}
