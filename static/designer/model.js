// The canvas model is the definition JSON of the API ({version, nodes, edges, settings}).
// These are pure helpers over it: node types registry, ids, adding/removing/pasting nodes and edges.

export const ID_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
export const CATEGORIES = [
  { key: "trigger", label: "Triggers" },
  { key: "action", label: "Actions" },
  { key: "control", label: "Control" },
];

// Node types keyed by the server's namespaced keys ("action.python", ...).
export class NodeTypes {
  constructor(list) {
    this.byKey = new Map(list.map((t) => [t.key, t]));
  }
  get(key) { return this.byKey.get(key); }
  all() { return [...this.byKey.values()]; }
  inCategory(cat) { return this.all().filter((t) => t.category === cat); }
  // Fallback for unknown types so a broken definition still renders.
  ports(key) {
    const t = this.get(key);
    return t ? { inputs: t.inputs, outputs: t.outputs } : { inputs: ["in"], outputs: ["out"] };
  }
}

export const clone = (v) => JSON.parse(JSON.stringify(v));

export function normalize(def) {
  const d = def && typeof def === "object" ? clone(def) : {};
  d.version = d.version ?? 1;
  d.nodes = Array.isArray(d.nodes) ? d.nodes : [];
  d.edges = Array.isArray(d.edges) ? d.edges : [];
  return d;
}

export function idPrefix(typeKey) {
  const last = String(typeKey).split(".").pop().replace(/[^A-Za-z0-9_]/g, "_") || "node";
  return /^[A-Za-z_]/.test(last) ? last : `n_${last}`;
}

// First free `<prefix>_<n>` not in `taken` (a Set of ids).
export function uniqueId(prefix, taken) {
  for (let n = 1; ; n++) {
    const id = `${prefix}_${n}`;
    if (!taken.has(id)) return id;
  }
}

function uniqueName(label, nodes) {
  const names = new Set(nodes.map((n) => n.name));
  if (!names.has(label)) return label;
  for (let n = 2; ; n++) if (!names.has(`${label} ${n}`)) return `${label} ${n}`;
}

export function makeNode(def, type, position) {
  const taken = new Set(def.nodes.map((n) => n.id));
  return {
    id: uniqueId(idPrefix(type.key), taken),
    type: type.key,
    name: uniqueName(type.label, def.nodes),
    parameters: clone(type.defaults || {}),
    position: { x: Math.round(position.x), y: Math.round(position.y) },
  };
}

export const edgeKey = (e) => `${e.source}:${e.source_port ?? "out"}->${e.target}:${e.target_port ?? "in"}`;

// Returns an error message, or null when the edge may be added.
export function canConnect(def, types, edge) {
  if (edge.source === edge.target) return "A node cannot connect to itself.";
  const src = def.nodes.find((n) => n.id === edge.source);
  const dst = def.nodes.find((n) => n.id === edge.target);
  if (!src || !dst) return "Unknown node.";
  if (!types.ports(src.type).outputs.includes(edge.source_port)) return `No output “${edge.source_port}”.`;
  if (!types.ports(dst.type).inputs.includes(edge.target_port)) return `No input “${edge.target_port}”.`;
  const key = edgeKey(edge);
  if (def.edges.some((e) => edgeKey(e) === key)) return "These ports are already connected.";
  return null;
}

export function removeNodes(def, ids) {
  const gone = new Set(ids);
  def.nodes = def.nodes.filter((n) => !gone.has(n.id));
  def.edges = def.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target));
  for (const n of def.nodes) if (n.parent && gone.has(n.parent)) delete n.parent;
}

// A clipboard payload: the selected nodes and the edges between them.
export function copyNodes(def, ids) {
  const sel = new Set(ids);
  return {
    kind: "stepwell.clipboard/v1",
    nodes: clone(def.nodes.filter((n) => sel.has(n.id))),
    edges: clone(def.edges.filter((e) => sel.has(e.source) && sel.has(e.target))),
  };
}

// Adds the clipboard's nodes with fresh ids, shifted by `offset`; returns the new ids.
export function pasteNodes(def, clip, offset) {
  const taken = new Set(def.nodes.map((n) => n.id));
  const map = new Map();
  const added = [];
  for (const node of clip.nodes) {
    const n = clone(node);
    n.id = uniqueId(idPrefix(n.type), taken);
    taken.add(n.id);
    map.set(node.id, n.id);
    n.position = { x: Math.round((node.position?.x ?? 0) + offset.x), y: Math.round((node.position?.y ?? 0) + offset.y) };
    n.name = uniqueName(node.name, def.nodes.concat(added));
    added.push(n);
  }
  for (const n of added) {
    if (n.parent) {
      if (map.has(n.parent)) n.parent = map.get(n.parent);
      else if (!def.nodes.some((m) => m.id === n.parent)) delete n.parent;
    }
  }
  def.nodes.push(...added);
  for (const e of clip.edges) {
    if (!map.has(e.source) || !map.has(e.target)) continue;
    const ne = { ...clone(e), source: map.get(e.source), target: map.get(e.target) };
    delete ne.id;
    def.edges.push(ne);
  }
  return added.map((n) => n.id);
}

// The node a validation problem belongs to: its node_id, or the node/edge its path points at.
export function problemTarget(def, problem) {
  const path = String(problem.path || "").replace(/^\$\.definition/, "$");
  let m = path.match(/^\$\.nodes\[(\d+)\]/);
  const out = { nodeId: problem.node_id || null, edgeIndex: null, path };
  if (m && !out.nodeId) out.nodeId = def.nodes[+m[1]]?.id ?? null;
  m = path.match(/^\$\.edges\[(\d+)\]/);
  if (m) out.edgeIndex = +m[1];
  return out;
}

// Arranges nodes left to right by their longest distance from a root (a node without incoming
// edges); nodes in one column keep their vertical order. Works on cyclic graphs too (the back
// edges are ignored). Returns {id: {x, y}}.
export function layeredLayout(def, { dx = 290, dy = 150, heightOf = () => 100 } = {}) {
  const ids = def.nodes.map((n) => n.id);
  const out = new Map(ids.map((id) => [id, []]));
  const indeg = new Map(ids.map((id) => [id, 0]));
  for (const e of def.edges) {
    if (!out.has(e.source) || !out.has(e.target) || e.source === e.target) continue;
    out.get(e.source).push(e.target);
    indeg.set(e.target, indeg.get(e.target) + 1);
  }
  // Kahn's algorithm; when only cycles remain, break one at the left-most node.
  const depth = new Map(ids.map((id) => [id, 0]));
  const done = new Set();
  const pos = new Map(def.nodes.map((n) => [n.id, n.position || { x: 0, y: 0 }]));
  let ready = ids.filter((id) => indeg.get(id) === 0);
  while (done.size < ids.length) {
    if (!ready.length) {
      const rest = ids.filter((id) => !done.has(id)).sort((a, b) => pos.get(a).x - pos.get(b).x);
      ready = [rest[0]];
    }
    const next = [];
    for (const id of ready) {
      if (done.has(id)) continue;
      done.add(id);
      for (const t of out.get(id)) {
        if (done.has(t)) continue;
        depth.set(t, Math.max(depth.get(t), depth.get(id) + 1));
        indeg.set(t, indeg.get(t) - 1);
        if (indeg.get(t) === 0) next.push(t);
      }
    }
    ready = next;
  }
  const columns = new Map();
  for (const n of def.nodes) {
    const d = depth.get(n.id);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const result = {};
  const tallest = Math.max(...[...columns.values()].map((c) => c.length));
  for (const [d, col] of columns) {
    col.sort((a, b) => pos.get(a.id).y - pos.get(b.id).y);
    const top = ((tallest - col.length) * dy) / 2;
    col.forEach((n, i) => { result[n.id] = { x: d * dx, y: Math.round(top + i * Math.max(dy, heightOf(n) + 40)) }; });
  }
  return result;
}
