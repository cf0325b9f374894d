// Mappings in parameter fields, beyond the picker's list (step-tools.js): insert an expression at
// the cursor (text inputs, textareas, Monaco editors), drop a field dragged from the picker onto
// an input, complete `{{ steps.` / `{{ trigger.` while typing, and warn about a reference to a
// field that no schema knows, with a "did you mean" from the schema.

import { h } from "./ui.js";

export const DRAG_TYPE = "application/x-stepwell-expression";
const SAFE_ID = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Is the caret at `pos` of JSON text inside a string literal?
export function insideString(text, pos) {
  let inside = false;
  for (let i = 0; i < pos; i++) {
    const c = text[i];
    if (c === "\\" && inside) { i += 1; continue; }
    if (c === '"') inside = !inside;
  }
  return inside;
}

// Remember where the caret of a text field was, so that a click elsewhere (the picker's button,
// its search box) or a re-render of the same text does not lose it.
export function trackCaret(field) {
  if (field._caretTracked) return;
  field._caretTracked = true;
  const keep = () => {
    if (field.selectionStart == null) return;
    field._caret = { start: field.selectionStart, end: field.selectionEnd, value: field.value };
  };
  for (const ev of ["keyup", "mouseup", "select", "input", "blur", "focus"]) field.addEventListener(ev, keep);
}

function caretOf(field) {
  const c = field._caret;
  if (c && c.value === field.value) return [c.start, c.end];
  const start = field.selectionStart ?? field.value.length;
  return [start, field.selectionEnd ?? start];
}

// Insert `expression` at the cursor of `target`: an <input>/<textarea> (an input event tells the
// panel) or a Monaco editor (its selection). JSON fields get a quoted string outside a string.
export function insertExpression(target, expression) {
  if (target && typeof target.executeEdits === "function") {
    const sel = target.getSelection();
    target.executeEdits("field-picker", [{ range: sel, text: expression, forceMoveMarkers: true }]);
    target.focus();
    return;
  }
  const [start, end] = caretOf(target);
  let text = expression;
  if (target.dataset.mode === "json" && !insideString(target.value, start)) text = JSON.stringify(expression);
  target.focus();
  target.setRangeText(text, start, end, "end");
  target._caret = { start: target.selectionStart, end: target.selectionEnd, value: target.value };
  target.dispatchEvent(new Event("input", { bubbles: true }));
}

// ---- the catalogue of fields -------------------------------------------------------------------

// Flattened {path, expression, type} of a JSON sample under `root` ("trigger" or a step).
export function sampleFields(sample, toExpression, depth = 0, prefix = []) {
  const out = [];
  const walk = (v, parts, d) => {
    if (parts.length) {
      const path = parts.map((p, i) => (typeof p === "number" ? `[${p}]` : (i ? "." : "") + (SAFE_ID.test(p) ? p : JSON.stringify(p)))).join("");
      out.push({ path, expression: toExpression(parts), type: Array.isArray(v) ? "array" : v === null ? "null" : typeof v === "object" ? "object" : typeof v });
    }
    if (d > 8 || out.length > 300 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) { if (v.length) walk(v[0], [...parts, 0], d + 1); return; }
    for (const [k, sub] of Object.entries(v)) walk(sub, [...parts, k], d + 1);
  };
  walk(sample, prefix, depth);
  return out;
}

function seg(p) {
  if (typeof p === "number") return `[${p}]`;
  return SAFE_ID.test(p) ? `.${p}` : `.${JSON.stringify(p)}`;
}

export const triggerExpression = (parts) => `{{ trigger${parts.map(seg).join("")} }}`;

// The trigger's fields as {{ trigger.… }}: the trigger's inferred output (from runs), else its
// sample payload (under body), plus the keys every trigger output has.
export function triggerGroup(def, schemas, types) {
  const trigger = def.nodes.find((n) => (types?.get(n.type)?.category ?? (n.type.startsWith("trigger.") ? "trigger" : "")) === "trigger");
  if (!trigger) return null;
  const fields = [];
  const seen = new Set();
  const add = (f) => { if (!seen.has(f.expression)) { seen.add(f.expression); fields.push(f); } };
  for (const f of schemas?.fields?.[trigger.id] || []) {
    if (!f.path) continue;
    add({ ...f, expression: f.expression.replace(/^\{\{ steps\.(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\.output/, "{{ trigger") });
  }
  const sample = trigger.parameters?.sample_payload;
  const fromSample = sample !== undefined ? sampleFields({ body: sample }, triggerExpression) : [];
  for (const f of fromSample) add({ ...f, sample: sampleValue({ body: sample }, f.path) });
  for (const key of ["body", "headers", "query", "method"]) add({ path: key, expression: `{{ trigger.${key} }}`, type: key === "method" ? "string" : "object" });
  return { id: "trigger-payload", title: "Trigger", fields, inferred: true, triggerId: trigger.id };
}

function sampleValue(value, path) {
  const parts = path.match(/"(?:[^"\\]|\\.)*"|[^.[\]]+|\[\d+\]/g) || [];
  let v = value;
  for (const p of parts) {
    if (v === null || typeof v !== "object") return undefined;
    v = p.startsWith("[") ? v[Number(p.slice(1, -1))] : v[p.startsWith('"') ? JSON.parse(p) : p];
  }
  return v;
}

// The inside of an expression: "{{ steps.a.output.x }}" → "steps.a.output.x".
const inner = (expression) => expression.replace(/^\{\{\s*|\s*\}\}$/g, "");

// ---- references that no schema knows ----------------------------------------------------------

export function editDistance(a, b) {
  const m = a.length, n = b.length;
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[n];
}

const REF = /(?<![\w.")\]])(steps\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\s*\.\s*output(?:\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")|\s*\[\s*-?\d+\s*\])*|trigger(?:\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")|\s*\[\s*-?\d+\s*\])*)/g;

const normal = (ref) => ref.replace(/\s+/g, "").replace(/\[-?\d+\]/g, "[0]");

// [{ref, known: false, suggestion}] for references in `text` to fields that the groups' schemas
// do not have. Only groups with known fields are checked (a step that never ran is not).
export function unknownReferences(text, groups) {
  const known = new Map();   // root ("steps.a.output" | "trigger") -> Set of normalised paths
  for (const g of groups) {
    if (g.inferred === false) continue;
    for (const f of g.fields) {
      const ex = normal(inner(f.expression));
      const root = ex.startsWith("trigger") ? "trigger" : ex.match(/^steps\.(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\.output/)?.[0];
      if (!root) continue;
      if (!known.has(root)) known.set(root, new Map([[root, "object"]]));
      known.get(root).set(ex, String(f.type || "any"));
    }
  }
  const out = [];
  const seen = new Set();
  for (const m of text.matchAll(/\{\{([\s\S]*?)\}\}/g)) {
    for (const r of m[1].matchAll(REF)) {
      const ref = normal(r[1]);
      const root = ref.startsWith("trigger") ? "trigger" : ref.match(/^steps\.(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\.output/)?.[0];
      const paths = known.get(root);
      if (!paths || paths.has(ref) || seen.has(ref)) continue;

      // a reference below a known object or any value whose fields we cannot see is not flagged
      const opaque = [...paths].some(([p, type]) => ref.startsWith(p) && /^[.[]/.test(ref.slice(p.length)) &&
        /object|any|\?/.test(type) && ![...paths.keys()].some((q) => q !== p && q.startsWith(p) && /^[.[]/.test(q.slice(p.length))));
      if (opaque) continue;
      seen.add(ref);
      let best = null, bestD = Infinity;
      for (const p of paths.keys()) {
        const d = editDistance(ref, p);
        if (d < bestD) { bestD = d; best = p; }
      }
      const limit = Math.max(2, Math.floor((ref.length - root.length) / 3));
      out.push({ ref: r[1].replace(/\s+/g, ""), suggestion: bestD <= limit && best !== root ? best : null });
    }
  }
  return out;
}

// ---- completion while typing ------------------------------------------------------------------

// The `{{ steps.…` or `{{ trigger.…` being typed before the caret: {start, prefix} or null.
export function typedReference(text, caret) {
  const before = text.slice(0, caret);
  const m = before.match(/\{\{\s*((?:steps|trigger)\b[^{}\s]*)$/);
  if (!m) return null;
  return { start: before.lastIndexOf("{{"), prefix: m[1] };
}

// The completions of `prefix` among the groups' fields (each {expression, path, type, group}).
export function completions(prefix, groups, max = 40) {
  const p = prefix.toLowerCase();
  const out = [];
  for (const g of groups) {
    for (const f of g.fields) {
      const ex = inner(f.expression);
      if (!ex.startsWith("steps.") && !ex.startsWith("trigger")) continue;
      if (ex.toLowerCase().startsWith(p) && ex.length >= p.length) out.push({ ...f, group: g.title });
      if (out.length >= max) return out;
    }
  }
  return out;
}

// Wire a parameter field (input or textarea) for mappings: caret memory, drops from the picker,
// completion while typing and warnings under `row` about unknown references.
// `groups()` returns the picker's groups for the field's node (fresh each call).
export function attachMappingHelp(field, row, groups, watch) {
  trackCaret(field);
  // Drops: the browser inserts the dragged text/plain at the drop position; a JSON field then
  // gets it quoted when it landed outside a string (capture: before the panel reads the value).
  field.addEventListener("dragover", (e) => {
    if (![...e.dataTransfer.types].includes(DRAG_TYPE)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    field.classList.add("drop-target");
  });
  field.addEventListener("dragleave", () => field.classList.remove("drop-target"));
  field.addEventListener("drop", (e) => {
    field.classList.remove("drop-target");
    const expression = e.dataTransfer.getData(DRAG_TYPE);
    if (!expression) return;
    const before = field.value;
    // If the browser did not insert it (nothing changed after the drop), insert at the cursor.
    setTimeout(() => { if (field.value === before) insertExpression(field, expression); }, 0);
  });
  field.addEventListener("input", (e) => {
    if (e.inputType !== "insertFromDrop" || field.dataset.mode !== "json") return;
    const start = field.selectionStart, end = field.selectionEnd;
    const dropped = field.value.slice(start, end);
    if (dropped.startsWith("{{") && !insideString(field.value, start)) {
      field.setRangeText(JSON.stringify(dropped), start, end, "end");
    }
  }, true);

  // Completion.
  let menu = null, items = [], active = 0, ctx = null;
  const close = () => { menu?.remove(); menu = null; items = []; ctx = null; };
  const accept = (i) => {
    const f = items[i];
    if (!f || !ctx) return;
    const caret = field.selectionStart;
    const rest = field.value.slice(caret);
    const closing = rest.match(/^[^{}\s]*\s*\}\}/);
    const end = closing ? caret + closing[0].length : caret;
    field.setRangeText(f.expression, ctx.start, end, "end");
    close();
    field.dispatchEvent(new Event("input", { bubbles: true }));
  };
  const render = () => {
    menu.replaceChildren(...items.map((f, i) => h("div", {
      class: `complete-item${i === active ? " active" : ""}`, role: "option", "data-expression": f.expression,
      onmousedown: (e) => { e.preventDefault(); accept(i); },
    }, h("span", { class: "mono" }, inner(f.expression)), h("span", { class: "pick-type" }, f.type))));
    menu.querySelector(".active")?.scrollIntoView({ block: "nearest" });
  };
  const update = () => {
    ctx = typedReference(field.value, field.selectionStart ?? 0);
    items = ctx ? completions(ctx.prefix, groups()) : [];
    if (!items.length) { close(); return; }
    if (!menu) {
      menu = h("div", { class: "mapping-complete", role: "listbox", "aria-label": "Fields" });
      document.body.append(menu);
    }
    active = 0;
    const r = field.getBoundingClientRect();
    menu.style.left = `${Math.max(8, Math.min(window.innerWidth - 368, r.left))}px`;
    menu.style.top = `${Math.min(window.innerHeight - 160, r.bottom + 2)}px`;
    render();
  };
  field.addEventListener("input", (e) => { if (e.isTrusted || e.inputType) update(); else close(); });
  field.addEventListener("keydown", (e) => {
    if (!menu) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      render();
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopPropagation();
      accept(active);
    } else if (e.key === "Escape") {
      e.stopPropagation();
      close();
    }
  });
  field.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== field) close(); }, 100));

  // Warnings about fields that no schema knows.
  const box = h("div", { class: "ref-warnings" });
  const hint = row.querySelector(".field-hint");
  row.insertBefore(box, hint || null);
  const check = () => {
    const found = unknownReferences(field.value, groups());
    box.replaceChildren(...found.map((w) => h("div", { class: "ref-warning", "data-ref": w.ref },
      "⚠ No schema knows ", h("code", {}, w.ref), ".",
      w.suggestion ? [" Did you mean ", h("button", {
        type: "button", class: "link-btn ref-fix", "data-suggestion": w.suggestion, title: "Replace with this field",
        onclick: (e) => {
          e.preventDefault();
          field.value = field.value.split(w.ref).join(w.suggestion);
          field.dispatchEvent(new Event("input", { bubbles: true }));
        },
      }, w.suggestion), "?"] : null)));
    field.classList.toggle("has-warning", found.length > 0);
  };
  field.addEventListener("input", check);
  watch(box, check);
  check();
}
