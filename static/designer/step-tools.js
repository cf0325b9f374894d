// Tools of the properties panel that talk to the run engine:
//   - the field picker: fields inferred from upstream nodes' outputs (GET .../schemas/) and pinned
//     samples (GET .../pins/), inserted as a {{ mapping }} at the cursor of a parameter field;
//   - "Test step": POST .../nodes/<id>/test/ with a sample input (or the latest run's upstream
//     outputs), showing output, stdout and stderr inline; "Pin output" / "Unpin".

import { api, request } from "./api.js";
import { DRAG_TYPE, insertExpression, triggerGroup } from "./field-picker.js";
import { staleReasons } from "./stale.js";
import { jsonTree } from "./json-tree.js";
import { setIcon } from "./icons.js";
import { h, toast } from "./ui.js";
import { followTestOutput, testFiles } from "./test-live.js";

// Ids of the nodes upstream of `nodeId` (what its mappings can read), nearest first.
export function upstreamOf(def, nodeId) {
  const into = new Map();
  for (const e of def.edges) {
    if (!into.has(e.target)) into.set(e.target, []);
    into.get(e.target).push(e.source);
  }
  const byId = new Map(def.nodes.map((n) => [n.id, n]));
  const seen = new Set([nodeId]);
  const order = [];
  let frontier = [nodeId];
  // A step inside a For each also sees what its loop sees.
  const parent = byId.get(nodeId)?.parent;
  if (parent && byId.has(parent)) frontier.push(parent);
  while (frontier.length) {
    const next = [];
    for (const id of frontier) {
      const sources = [...(into.get(id) || [])];
      if (id !== nodeId && byId.get(id)?.parent) sources.push(byId.get(id).parent);
      if (id === parent && !seen.has(parent)) { seen.add(parent); order.push(parent); }
      for (const s of sources) {
        if (seen.has(s) || !byId.has(s)) continue;
        seen.add(s);
        order.push(s);
        next.push(s);
      }
    }
    frontier = next;
  }
  return order;
}

// The value at `path` ("a.b[0].c") of a sample, or undefined.
function sampleAt(value, path) {
  if (!path) return value;
  const parts = path.match(/[^.[\]]+|\[\d+\]/g) || [];
  let v = value;
  for (const p of parts) {
    if (v === null || typeof v !== "object") return undefined;
    v = p.startsWith("[") ? v[Number(p.slice(1, -1))] : v[p.replace(/^"|"$/g, "")];
  }
  return v;
}

function preview(v) {
  if (v === undefined) return "";
  const s = typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}

// Insert `expression` at the cursor of an <input>/<textarea> (or a Monaco editor's selection) and
// tell the panel (input event): field-picker.js.
export const insertAtCursor = insertExpression;

export class StepTools {
  // workflowId; getDefinition() → the editor's definition; savedNode(id) → the node as saved (or
  // null); ensureSaved() → Promise<bool>. "Test step" sends the editor's draft (nothing is saved);
  // `checkSyntax(nodeId)` → Promise<bool> (set by editor-save.js) blocks it on a syntax error.
  constructor({ workflowId, types, getDefinition, savedNode, ensureSaved }) {
    this.workflowId = workflowId;
    this.types = types;
    this.getDefinition = getDefinition;
    this.savedNode = savedNode;
    this.ensureSaved = ensureSaved;
    this.schemas = { fields: {}, schemas: {} };
    this.pins = {};
    this.latest = { run: null, outputs: {}, nodes: {} };  // the newest run's outputs (samples, stale)
    this.results = new Map();   // node id -> last test result (kept while the page lives)
    this.listeners = new Set(); // re-render hooks of what is on screen
    this.popover = null;
    this.loaded = this.refresh();
    document.addEventListener("mousedown", (e) => {
      if (this.popover && !this.popover.contains(e.target) && !e.target.closest(".pick-field")) this.closePicker();
    }, true);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && this.popover) this.closePicker(); }, true);
  }

  async refresh() {
    try {
      const [schemas, pins, latest] = await Promise.all([api.schemas(this.workflowId), api.pins(this.workflowId),
        request("GET", `/api/workflows/${encodeURIComponent(this.workflowId)}/latest-run/`).catch(() => null)]);
      this.schemas = schemas || { fields: {}, schemas: {} };
      this.pins = pins || {};
      this.latest = latest || this.latest;
    } catch { /* the picker shows what it has */ }
    for (const f of [...this.listeners]) f();
  }

  // The definition changed in the editor: redraw what depends on it (stale markers).
  notify() {
    for (const f of [...this.listeners]) f();
  }

  _watch(el, fn) {
    // Call fn on refresh while `el` is in the page.
    const hook = () => { if (!el.isConnected) this.listeners.delete(hook); else fn(); };
    this.listeners.add(hook);
  }

  // ---- field picker -------------------------------------------------------------------------

  pickerButton(nodeId, field) {
    // A span, not a button: it sits inside the field's <label>, whose click would otherwise go to it.
    const btn = h("span", { class: "pick-field", role: "button", tabindex: 0, title: "Insert a field from an earlier step",
      "aria-label": "Insert a field", "data-for": field.id }, "{ }");
    const open = (e) => {
      e.preventDefault();
      e.stopPropagation();
      if (this.popover && this.popover._for === field) { this.closePicker(); return; }
      this.openPicker(nodeId, field, btn);
    };
    btn.addEventListener("click", open);
    btn.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") open(e); });
    return btn;
  }

  groups(nodeId) {
    const def = this.getDefinition();
    const byId = new Map(def.nodes.map((n) => [n.id, n]));
    const groups = [];
    const node = byId.get(nodeId);
    if (node?.parent) {
      groups.push({ id: "item", title: `Current item of “${byId.get(node.parent)?.name || node.parent}”`, fields: [
        { path: "item", expression: "{{ item }}", type: "any" },
        { path: "index", expression: "{{ index }}", type: "integer" }] });
    }
    for (const id of upstreamOf(def, nodeId)) {
      const n = byId.get(id);
      const fields = this.schemas.fields?.[id] || [];
      const pin = this.pins[id];
      const ran = !pin && this.latest.outputs && id in this.latest.outputs;
      // stale samples: what changed since the pin (its snapshot) or the newest run (its version)
      const stale = pin ? (pin.snapshot?.nodes ? staleReasons(pin.snapshot.nodes, def, id) : (pin.stale ? ["the step changed since it was pinned"] : []))
        : ran ? staleReasons(this.latest.nodes, def, id) : [];
      groups.push({
        id, title: n.name || id, pinned: !!pin, sampleFrom: pin ? "pin" : ran ? "run" : null, stale,
        fields: (fields.length ? fields : [{ path: "", expression: `{{ steps.${/^[A-Za-z_][A-Za-z0-9_]*$/.test(id) ? id : JSON.stringify(id)}.output }}`, type: "?" }])
          .map((f) => ({ ...f, sample: pin ? sampleAt(pin.output, f.path) : ran ? sampleAt(this.latest.outputs[id], f.path) : undefined })),
        inferred: fields.length > 0,
      });
    }
    const trig = upstreamOf(def, nodeId).length || node?.parent ? triggerGroup(def, this.schemas, this.types) : null;
    if (trig) groups.splice(node?.parent ? 1 : 0, 0, trig);
    const vars = (def.settings?.variables || []).filter((v) => v.name);
    if (vars.length) {
      groups.push({ id: "vars", title: "Variables", fields: vars.map((v) => ({ path: v.name, expression: `{{ vars.${v.name} }}`, type: "string" })) });
    }
    return groups;
  }

  openPicker(nodeId, field, anchor) {
    this.closePicker();
    const search = h("input", { type: "search", class: "picker-search", placeholder: "Filter fields…", "aria-label": "Filter fields" });
    const list = h("div", { class: "picker-list" });
    const pop = h("div", { class: "field-picker", role: "dialog", "aria-label": "Insert a field" },
      h("div", { class: "picker-head" }, h("strong", {}, "Insert a field"), search), list);
    pop._for = field;
    const render = () => {
      const q = search.value.trim().toLowerCase();
      const groups = this.groups(nodeId);
      if (!groups.length) {
        list.replaceChildren(h("p", { class: "muted small picker-empty" }, "No earlier steps: connect this node after another one."));
        return;
      }
      list.replaceChildren(...groups.map((g) => {
        const items = g.fields.filter((f) => !q || `${g.id} ${f.path} ${f.expression}`.toLowerCase().includes(q));
        if (!items.length) return null;
        return h("div", { class: "picker-group", "data-node": g.id },
          h("div", { class: "picker-title" }, g.title, g.id !== g.title && !["item", "vars", "trigger-payload"].includes(g.id) ? h("code", { class: "muted" }, ` ${g.id}`) : null,
            g.pinned ? h("span", { class: "tag", title: "Sample output pinned on this step" }, "pinned") : null,
            g.stale?.length ? h("span", { class: "stale-marker", title: `Changed since this ${g.sampleFrom === "pin" ? "pin" : "run"}: ${g.stale.join("; ")}` }, "stale") : null),
          g.stale?.length ? h("div", { class: "muted small picker-stale" }, `${g.sampleFrom === "pin" ? "Pinned" : "Last run's"} data is stale: ${g.stale.join("; ")}.`) : null,
          g.inferred === false ? h("div", { class: "muted small picker-hint" }, "No data yet: run the workflow or test this step to see its fields.") : null,
          items.map((f) => h("button", {
            type: "button", class: "pick-item", "data-expression": f.expression, "data-path": f.path, title: `${f.expression} (click to insert at the cursor, or drag onto a field)`,
            draggable: "true",
            ondragstart: (e) => { e.dataTransfer.setData(DRAG_TYPE, f.expression); e.dataTransfer.setData("text/plain", f.expression); e.dataTransfer.effectAllowed = "copy"; },
            onclick: () => { insertAtCursor(field, f.expression); this.closePicker(); },
          }, h("span", { class: "pick-path mono" }, f.path || "output"), h("span", { class: "pick-type" }, f.type),
          f.sample !== undefined ? h("span", { class: "pick-sample mono" }, preview(f.sample)) : null)));
      }).filter(Boolean));
    };
    search.addEventListener("input", render);
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); list.querySelector(".pick-item")?.click(); }
    });
    render();
    document.body.append(pop);
    const r = anchor.getBoundingClientRect();
    const w = 340;
    pop.style.left = `${Math.max(8, Math.min(window.innerWidth - w - 8, r.right - w))}px`;
    pop.style.top = `${Math.min(window.innerHeight - 120, r.bottom + 6)}px`;
    pop.style.maxHeight = `${Math.max(160, window.innerHeight - r.bottom - 20)}px`;
    this.popover = pop;
    this._watch(pop, render);
    search.focus();
  }

  closePicker() {
    if (this.popover) this.popover.remove();
    this.popover = null;
  }

  // ---- test a step ----------------------------------------------------------------------------

  testSection(node) {
    const nodeId = node.id;
    const input = h("textarea", { id: "test-input", class: "mono", rows: 4, spellcheck: "false",
      placeholder: '{"trigger": {"body": {}}, "steps": {"step_id": {"field": 1}}}' });
    const latest = h("input", { type: "checkbox", id: "test-latest" });
    const err = h("span", { class: "field-error" });
    const result = h("div", { class: "test-result", id: "test-result" });
    const pinBox = h("div", { class: "pin-state", id: "pin-state" });
    const testBtn = h("button", { type: "button", class: "btn btn-sm btn-primary", id: "btn-test-step" },
      setIcon(h("span"), "flask"), "Test step");
    const pinBtn = h("button", { type: "button", class: "btn btn-sm", id: "btn-pin", disabled: true,
      title: "Keep this output as the step's sample data (for field pickers and tests of later steps)" },
    setIcon(h("span"), "pin"), "Pin output");

    const showResult = (res) => {
      if (!res) { result.replaceChildren(); pinBtn.disabled = true; return; }
      const ok = res.status === "succeeded";
      const block = (title, content, open = false, cls = "") => h("details", { class: `test-block ${cls}`, open },
        h("summary", {}, title), content);
      result.replaceChildren(...[
        h("div", { class: "test-status" }, h("span", { class: `status-badge`, "data-status": res.status }, res.status.replace("_", " ")),
          res.run?.duration_ms != null ? h("span", { class: "muted small" }, ` ${Math.round(res.run.duration_ms)} ms`) : null,
          res.run?.page ? h("a", { class: "small", href: res.run.page, target: "_blank" }, " test run ↗") : null,
          h("span", { class: "muted small test-source", title: res.draft ? `Draft ${res.draft.hash.slice(0, 12)}` : "" },
            res.draft ? ` · unsaved draft (based on v${res.draft.base_version})` : res.run?.version ? ` · v${res.run.version}` : "")),
        res.error ? h("div", { class: "alert alert-error test-error" }, res.error) : null,
        block("Output", h("div", { class: "test-output" }, jsonTree(res.output ?? null, { openDepth: 2 })), true, "test-output-block"),
        block(`stdout${res.stdout ? "" : " (empty)"}`, h("pre", { class: "test-log test-stdout" }, res.stdout || ""), !!res.stdout),
        block(`stderr${res.stderr ? "" : " (empty)"}`, h("pre", { class: "test-log test-stderr" }, res.stderr || ""), !!res.stderr),
        testFiles(res, nodeId),   // produced files and figures (test-live.js)
      ].filter(Boolean));
      pinBtn.disabled = !ok;
    };

    const showPin = () => {
      const pin = this.pins[nodeId];
      if (!pin) { pinBox.replaceChildren(); return; }
      const saved = this.savedNode(nodeId);
      const current = this.getDefinition().nodes.find((n) => n.id === nodeId);
      const changed = !!(saved && current && JSON.stringify([saved.type, saved.parameters]) !== JSON.stringify([current.type, current.parameters]));
      const reasons = pin.snapshot?.nodes ? staleReasons(pin.snapshot.nodes, this.getDefinition(), nodeId) : [];
      const stale = pin.stale || changed || reasons.length > 0;
      pinBox.replaceChildren(h("div", { class: `pin-head ${stale ? "is-stale" : ""}` },
        setIcon(h("span", { class: "pin-icon" }), "pin"),
        h("strong", {}, "Pinned output"),
        stale ? h("span", { class: "stale-marker", title: `Changed since this output was pinned${reasons.length ? `: ${reasons.join("; ")}` : ""}; test and pin again` }, "stale") : null,
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "btn btn-sm", id: "btn-unpin", onclick: unpin }, "Unpin")),
      stale && reasons.length ? h("div", { class: "muted small pin-stale-why" }, `Changed since pinned: ${reasons.join("; ")}.`) : null,
      h("details", { class: "test-block" }, h("summary", {}, "Pinned data"), jsonTree(pin.output, { openDepth: 1 })));
    };

    const run = async () => {
      err.textContent = "";
      let sample = null;
      if (input.value.trim()) {
        try {
          sample = JSON.parse(input.value);
          if (!sample || typeof sample !== "object" || Array.isArray(sample)) throw new Error("must be a JSON object");
        } catch (e) {
          err.textContent = `Invalid sample input: ${e.message}`;
          return;
        }
      }
      // the draft as it is in the editor, unsaved; a syntax error in this step blocks the test
      if (this.checkSyntax && (await this.checkSyntax(nodeId))) return;
      testBtn.disabled = true;
      testBtn.classList.add("busy");
      result.replaceChildren(h("div", { class: "muted small test-running" }, "Running the step…"));
      const live = followTestOutput(this.workflowId, nodeId, result);   // live output (test-live.js)
      await live.ready;
      try {
        // Nothing typed and no latest run: no input (the server's defaults: pinned outputs and the
        // trigger's sample payload). The definition is the editor's draft: nothing is saved.
        const body = { definition: this.getDefinition(), ...(sample || latest.checked ? { input: sample, use_latest_run: latest.checked } : {}) };
        const res = await api.testNode(this.workflowId, nodeId, body);
        this.results.set(nodeId, res);
        if (res.status === "queued" || res.status === "running") res.error = res.error || "Still running: see the test run.";
        showResult(res);
        this.refresh();
      } catch (e) {
        const more = (e.errors || []).filter((x) => x.message !== e.message).slice(0, 3);
        result.replaceChildren(h("div", { class: "alert alert-error test-error" }, e.message,
          more.length ? h("ul", { class: "test-error-list" }, more.map((x) => h("li", {}, h("code", {}, x.path), ` ${x.message}`))) : null));
      } finally {
        live.stop();
        testBtn.disabled = false;
        testBtn.classList.remove("busy");
      }
    };

    const pin = async () => {
      const res = this.results.get(nodeId);
      if (!res) return;
      try {
        const body = res.run?.id ? { run: res.run.id } : { output: res.output };
        this.pins[nodeId] = await api.pin(this.workflowId, nodeId, body);
        toast("Output pinned", "success", { timeout: 1500 });
        showPin();
        this.refresh();
      } catch (e) {
        toast(`Pin failed: ${e.message}`, "error");
      }
    };

    async function unpin() {
      try {
        await api.unpin(tools.workflowId, nodeId);
        delete tools.pins[nodeId];
        showPin();
        tools.refresh();
      } catch (e) {
        toast(`Unpin failed: ${e.message}`, "error");
      }
    }
    const tools = this;

    testBtn.addEventListener("click", run);
    pinBtn.addEventListener("click", pin);
    showResult(this.results.get(nodeId));
    showPin();
    const section = h("section", { class: "props-section test-section", id: "test-section" },
      h("h4", {}, "Test step"),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Sample input (JSON, optional)"), input,
        h("span", { class: "field-hint" }, "Trigger payload and earlier steps' outputs; left empty, pinned outputs and the trigger's sample payload are used.")),
      err,
      h("label", { class: "check" }, latest, " Use the latest run's outputs of earlier steps"),
      h("div", { class: "test-actions" }, testBtn, pinBtn),
      result, pinBox);
    this._watch(section, showPin);
    return { el: section, sync: () => showPin() };
  }
}
