// A read-only JSON tree: objects and arrays are <details> (open to `openDepth`), leaves are typed spans.
import { h } from "./ui.js";

const MAX_CHILDREN = 500;

function leaf(value) {
  if (value === null) return h("span", { class: "jt-null" }, "null");
  switch (typeof value) {
    case "string": return h("span", { class: "jt-str", title: value.length > 200 ? `${value.length} characters` : null }, JSON.stringify(value));
    case "number": return h("span", { class: "jt-num" }, String(value));
    case "boolean": return h("span", { class: "jt-bool" }, String(value));
    default: return h("span", {}, String(value));
  }
}

function summary(value) {
  if (Array.isArray(value)) return `[ ${value.length} item${value.length === 1 ? "" : "s"} ]`;
  const n = Object.keys(value).length;
  return `{ ${n} key${n === 1 ? "" : "s"} }`;
}

function node(key, value, depth, openDepth) {
  const label = key === null ? null : h("span", { class: "jt-key" }, typeof key === "number" ? `${key}` : key);
  const sep = key === null ? null : h("span", { class: "jt-sep" }, ": ");
  if (value === null || typeof value !== "object") {
    return h("div", { class: "jt-row" }, label, sep, leaf(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) return h("div", { class: "jt-row" }, label, sep, h("span", { class: "jt-empty" }, Array.isArray(value) ? "[]" : "{}"));
  const det = h("details", { class: "jt-node", open: depth < openDepth, "data-key": key === null ? null : String(key) });
  det.append(h("summary", {}, label, sep, h("span", { class: "jt-sum" }, summary(value))));
  const kids = h("div", { class: "jt-kids" });
  for (const [k, v] of entries.slice(0, MAX_CHILDREN)) kids.append(node(k, v, depth + 1, openDepth));
  if (entries.length > MAX_CHILDREN) kids.append(h("div", { class: "jt-row muted" }, `… ${entries.length - MAX_CHILDREN} more`));
  det.append(kids);
  return det;
}

// jsonTree(value, {openDepth}) → an element; `value` is any JSON value.
export function jsonTree(value, { openDepth = 2 } = {}) {
  const root = h("div", { class: "json-tree mono" });
  if (value === undefined) root.append(h("span", { class: "jt-null" }, "—"));
  else root.append(node(null, value, 0, openDepth));
  return root;
}
