// Read-only drawing of a workflow definition: HTML nodes at their saved positions over an SVG of
// edges, scaled to fit. Each node shows a status (setStatus) and can be selected (onSelect).
import { h } from "./ui.js";
import { setIcon } from "./icons.js";
import { NODE_W } from "./node-size.js";

export const NODE_H = 64;
const PAD = 28;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

export class RunGraph {
  // definition: {nodes, edges}; nodeTypes: {key: {label, category, icon, outputs}}
  constructor(host, definition, nodeTypes, { onSelect } = {}) {
    this.host = host;
    this.def = definition || { nodes: [], edges: [] };
    this.types = nodeTypes || {};
    this.onSelect = onSelect || (() => {});
    this.nodes = new Map();
    this.selected = null;
    this.draw();
    this.fit();
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(host);
  }

  draw() {
    const nodes = this.def.nodes || [];
    const xs = nodes.map((n) => n.position?.x ?? 0), ys = nodes.map((n) => n.position?.y ?? 0);
    this.minX = Math.min(0, ...xs) - PAD;
    this.minY = Math.min(0, ...ys) - PAD;
    if (xs.length) { this.minX = Math.min(...xs) - PAD; this.minY = Math.min(...ys) - PAD; }
    this.width = (xs.length ? Math.max(...xs) - this.minX + NODE_W : 0) + PAD;
    this.height = (ys.length ? Math.max(...ys) - this.minY + NODE_H : 0) + PAD;
    const pos = (n) => ({ x: (n.position?.x ?? 0) - this.minX, y: (n.position?.y ?? 0) - this.minY });

    this.world = h("div", { class: "rg-world" });
    this.world.style.width = `${this.width}px`;
    this.world.style.height = `${this.height}px`;
    const edges = svg("svg", { class: "rg-edges", width: this.width, height: this.height });
    const defs = svg("defs");
    const marker = svg("marker", { id: "rg-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "rg-arrow" }));
    defs.append(marker);
    edges.append(defs);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    for (const e of this.def.edges || []) {
      const a = byId.get(e.source), b = byId.get(e.target);
      if (!a || !b) continue;
      const outs = this.types[a.type]?.outputs || ["out"];
      const idx = Math.max(0, outs.indexOf(e.source_port));
      const pa = pos(a), pb = pos(b);
      const x1 = pa.x + NODE_W, y1 = pa.y + (NODE_H * (idx + 1)) / (outs.length + 1);
      const x2 = pb.x, y2 = pb.y + NODE_H / 2;
      const dx = Math.max(40, Math.abs(x2 - x1) / 2);
      const path = svg("path", { d: `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2 - 2} ${y2}`,
        class: "rg-edge", "marker-end": "url(#rg-arrow)", "data-source": e.source, "data-target": e.target });
      edges.append(path);
      if (outs.length > 1 && e.source_port) {
        const t = svg("text", { x: x1 + 6, y: y1 - 5, class: "rg-port" });
        t.textContent = e.source_port;
        edges.append(t);
      }
    }
    // nodes inside a For each: a dashed link from the loop to each of them
    for (const n of nodes) {
      const parent = n.parent && byId.get(n.parent);
      if (!parent) continue;
      const pp = pos(parent), pc = pos(n);
      const x1 = pp.x + NODE_W / 2, y1 = pp.y + NODE_H, x2 = pc.x + NODE_W / 2, y2 = pc.y;
      const path = svg("path", { d: `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2 - 2}`,
        class: "rg-edge rg-child", "marker-end": "url(#rg-arrow)", "data-source": parent.id, "data-target": n.id });
      edges.append(path);
      const t = svg("text", { x: (x1 + x2) / 2 + 6, y: (y1 + y2) / 2, class: "rg-port" });
      t.textContent = "each item";
      edges.append(t);
    }
    this.edges = edges;
    this.world.append(edges);
    for (const n of nodes) {
      const t = this.types[n.type] || { label: n.type, category: "unknown", icon: "?" };
      const p = pos(n);
      const status = h("span", { class: "rg-status", "data-status": "pending" }, "not run");
      const meta = h("span", { class: "rg-meta" });
      const icon = h("span", { class: "rg-icon" });
      setIcon(icon, n.type, t.icon || "•");
      const el = h("button", {
        type: "button", class: `rg-node cat-${t.category || "unknown"}`, "data-node": n.id, "data-status": "pending",
        title: `${n.name || n.id} (${t.label})`, onclick: () => this.onSelect(n.id),
      },
        icon,
        h("span", { class: "rg-titles" }, h("span", { class: "rg-name" }, n.name || n.id),
          h("span", { class: "rg-type" }, h("span", {}, t.label), meta)),
        status);
      el.style.left = `${p.x}px`;
      el.style.top = `${p.y}px`;
      el.style.width = `${NODE_W}px`;
      el.style.height = `${NODE_H}px`;
      this.nodes.set(n.id, { el, status, meta });
      this.world.append(el);
    }
    this.host.replaceChildren(this.world);
    if (!nodes.length) this.host.append(h("p", { class: "muted rg-empty" }, "This version has no nodes."));
  }

  fit() {
    const avail = this.host.clientWidth - 2;
    const k = avail > 0 && this.width > avail ? Math.max(0.35, avail / this.width) : 1;
    this.world.style.transform = `scale(${k})`;
    this.host.style.height = `${Math.ceil(this.height * k) + 4}px`;
  }

  // status: a step status or "pending"; label: the short text shown; meta: e.g. "1.2 s"
  setStatus(nodeId, status, label, meta = "") {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    if (n.el.dataset.status !== status) {
      n.el.dataset.status = status;
      n.status.dataset.status = status;
      for (const p of this.edges.querySelectorAll(`path[data-target="${CSS.escape(nodeId)}"]`)) p.dataset.status = status;
    }
    n.status.textContent = label;
    n.meta.textContent = meta;
  }

  select(nodeId) {
    if (this.selected) this.nodes.get(this.selected)?.el.classList.remove("selected");
    this.selected = nodeId;
    this.nodes.get(nodeId)?.el.classList.add("selected");
  }
}
