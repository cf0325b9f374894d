// The canvas: renders a definition (nodes as HTML, edges as SVG) and turns pointer input into
// events. It never changes the definition itself; the page controller listens and commits.
//
// Events (CustomEvent, detail in braces):
//   select {ids}                    selection changed (node ids)
//   edgeselect {index}              an edge was clicked (index into definition.edges, or null)
//   move {positions: {id: {x,y}}}   nodes were dragged to new positions
//   connect {source, source_port, target, target_port}
//   droptype {type, position}       a palette item was dropped at canvas coordinates
//   open {id}                       a node was double-clicked
//   viewport {x, y, k}              pan/zoom changed

import { edgeKey } from "./model.js";
import { setIcon } from "./icons.js";

export const NODE_W = 228;
export const HEAD_H = 54;
export const ROW_H = 26;
export const PAD = 6;
const GRID = 10;
const MIN_K = 0.2, MAX_K = 2;
const SVG_NS = "http://www.w3.org/2000/svg";

function portRows(ports) {
  return Math.max(ports.inputs.length, ports.outputs.length, 1);
}

export function nodeHeight(ports) {
  return HEAD_H + PAD * 2 + portRows(ports) * ROW_H;
}

export function portPoint(node, ports, side, name) {
  const list = side === "in" ? ports.inputs : ports.outputs;
  const i = Math.max(0, list.indexOf(name));
  return {
    x: node.position.x + (side === "in" ? 0 : NODE_W),
    y: node.position.y + HEAD_H + PAD + i * ROW_H + ROW_H / 2,
  };
}

function curve(a, b) {
  const dx = Math.max(40, Math.abs(b.x - a.x) * 0.5);
  return `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x} ${b.y}`;
}

const snap = (v) => Math.round(v / GRID) * GRID;

export class Canvas extends EventTarget {
  constructor(root, types) {
    super();
    this.types = types;
    this.root = root;
    this.def = { nodes: [], edges: [] };
    this.view = { x: 40, y: 40, k: 1 };
    this.selection = new Set();
    this.selectedEdge = null;
    this.problems = new Map();      // node id -> [messages]
    this.edgeProblems = new Set();  // edge indexes
    this.nodeEls = new Map();       // id -> element
    this.edgeEls = new Map();       // edgeKey -> path
    this.byId = new Map();

    root.classList.add("canvas");
    root.tabIndex = 0;
    this.world = document.createElement("div");
    this.world.className = "canvas-world";
    this.svg = document.createElementNS(SVG_NS, "svg");
    this.svg.classList.add("canvas-edges");
    this.tempPath = document.createElementNS(SVG_NS, "path");
    this.tempPath.classList.add("edge-temp");
    this.svg.append(this.tempPath);
    this.nodeLayer = document.createElement("div");
    this.nodeLayer.className = "canvas-nodes";
    this.marquee = document.createElement("div");
    this.marquee.className = "canvas-marquee";
    this.world.append(this.svg, this.nodeLayer);
    root.append(this.world, this.marquee);

    root.addEventListener("pointerdown", (e) => this._onPointerDown(e));
    root.addEventListener("wheel", (e) => this._onWheel(e), { passive: false });
    root.addEventListener("dblclick", (e) => {
      const el = e.target.closest(".node");
      if (el) this._emit("open", { id: el.dataset.id });
    });
    root.addEventListener("dragover", (e) => {
      if ([...e.dataTransfer.types].includes("application/x-stepwell-node")) {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
        root.classList.add("drop-target");
      }
    });
    root.addEventListener("dragleave", () => root.classList.remove("drop-target"));
    root.addEventListener("drop", (e) => {
      root.classList.remove("drop-target");
      const type = e.dataTransfer.getData("application/x-stepwell-node");
      if (!type) return;
      e.preventDefault();
      const p = this.clientToCanvas(e.clientX, e.clientY);
      const ports = this.types.ports(type);
      this._emit("droptype", {
        type, position: { x: snap(p.x - NODE_W / 2), y: snap(p.y - HEAD_H / 2) }, ports,
      });
    });
    this._applyView();
  }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  // ---- rendering -------------------------------------------------------------------------

  render(def) {
    const t0 = performance.now();
    this.def = def;
    this.byId = new Map(def.nodes.map((n) => [n.id, n]));
    const seen = new Set();
    for (const node of def.nodes) {
      seen.add(node.id);
      let el = this.nodeEls.get(node.id);
      const sig = JSON.stringify([node.type, node.name, node.parent || null]);
      if (!el || el._sig !== sig) {
        const fresh = this._buildNode(node);
        if (el) el.replaceWith(fresh); else this.nodeLayer.append(fresh);
        el = fresh;
        this.nodeEls.set(node.id, el);
      }
      this._placeNode(el, node);
      this._decorateNode(el, node.id);
    }
    for (const [id, el] of this.nodeEls) {
      if (!seen.has(id)) { el.remove(); this.nodeEls.delete(id); }
    }
    for (const id of [...this.selection]) if (!seen.has(id)) this.selection.delete(id);
    this._renderEdges();
    this.lastRenderMs = performance.now() - t0;
  }

  _buildNode(node) {
    const type = this.types.get(node.type);
    const ports = this.types.ports(node.type);
    const el = document.createElement("div");
    el.className = `node cat-${type ? type.category : "unknown"}`;
    el.dataset.id = node.id;
    el.dataset.type = node.type;
    el.style.width = `${NODE_W}px`;
    el._sig = JSON.stringify([node.type, node.name, node.parent || null]);

    const head = document.createElement("div");
    head.className = "node-head";
    const icon = document.createElement("span");
    icon.className = "node-icon";
    setIcon(icon, node.type, type ? type.icon || "•" : "?");
    const titles = document.createElement("div");
    titles.className = "node-titles";
    const name = document.createElement("div");
    name.className = "node-name";
    name.textContent = node.name || node.id;
    name.title = node.name || node.id;
    const sub = document.createElement("div");
    sub.className = "node-type";
    sub.textContent = type ? type.label : `Unknown type ${node.type}`;
    if (node.parent) {
      const chip = document.createElement("span");
      chip.className = "node-parent";
      chip.textContent = `in ${node.parent}`;
      chip.title = `Runs once per item of For each “${node.parent}”`;
      sub.append(" ", chip);
      el.classList.add("in-loop");
    }
    titles.append(name, sub);
    const del = document.createElement("button");
    del.className = "node-delete";
    del.type = "button";
    del.title = "Delete node";
    del.setAttribute("aria-label", "Delete node");
    del.textContent = "×";
    head.append(icon, titles, del);

    const body = document.createElement("div");
    body.className = "node-ports";
    body.style.height = `${portRows(ports) * ROW_H + PAD * 2}px`;
    const mk = (side, pname, i) => {
      const p = document.createElement("div");
      p.className = `port port-${side}`;
      p.dataset.port = pname;
      p.dataset.side = side;
      p.style.top = `${PAD + i * ROW_H}px`;
      p.style.height = `${ROW_H}px`;
      const dot = document.createElement("i");
      dot.className = "port-dot";
      const label = document.createElement("span");
      label.className = "port-label";
      label.textContent = pname;
      p.append(dot, label);
      p.title = `${side === "in" ? "Input" : "Output"} “${pname}”`;
      return p;
    };
    ports.inputs.forEach((p, i) => body.append(mk("in", p, i)));
    ports.outputs.forEach((p, i) => body.append(mk("out", p, i)));
    const err = document.createElement("div");
    err.className = "node-error";
    el.append(head, body, err);
    return el;
  }

  _placeNode(el, node) {
    const { x, y } = node.position || { x: 0, y: 0 };
    el.style.transform = `translate(${x}px, ${y}px)`;
  }

  _decorateNode(el, id) {
    el.classList.toggle("selected", this.selection.has(id));
    const msgs = this.problems.get(id);
    el.classList.toggle("has-error", !!msgs);
    const err = el.querySelector(".node-error");
    if (msgs) {
      err.textContent = msgs[0] + (msgs.length > 1 ? ` (+${msgs.length - 1} more)` : "");
      err.title = msgs.join("\n");
    } else if (err.textContent) {
      err.textContent = "";
      err.title = "";
    }
  }

  _edgeEnds(e) {
    const s = this.byId.get(e.source), t = this.byId.get(e.target);
    if (!s || !t) return null;
    return [
      portPoint(s, this.types.ports(s.type), "out", e.source_port ?? "out"),
      portPoint(t, this.types.ports(t.type), "in", e.target_port ?? "in"),
    ];
  }

  _renderEdges() {
    const seen = new Set();
    this.edgeIndex = new Map(); // node id -> [edge keys]
    this.def.edges.forEach((e, i) => {
      const key = edgeKey(e);
      seen.add(key);
      let g = this.edgeEls.get(key);
      if (!g) {
        g = document.createElementNS(SVG_NS, "g");
        g.classList.add("edge");
        const hit = document.createElementNS(SVG_NS, "path");
        hit.classList.add("edge-hit");
        const path = document.createElementNS(SVG_NS, "path");
        path.classList.add("edge-path");
        g.append(hit, path);
        g.dataset.source = e.source;
        g.dataset.target = e.target;
        g.dataset.sourcePort = e.source_port ?? "out";
        g.dataset.targetPort = e.target_port ?? "in";
        this.svg.insertBefore(g, this.tempPath);
        this.edgeEls.set(key, g);
      }
      g.dataset.index = i;
      g._edge = e;
      g.classList.toggle("selected", this.selectedEdge === i);
      g.classList.toggle("has-error", this.edgeProblems.has(i));
      this._drawEdge(g);
      for (const id of [e.source, e.target]) {
        if (!this.edgeIndex.has(id)) this.edgeIndex.set(id, []);
        this.edgeIndex.get(id).push(g);
      }
    });
    for (const [key, g] of this.edgeEls) {
      if (!seen.has(key)) { g.remove(); this.edgeEls.delete(key); }
    }
  }

  _drawEdge(g) {
    const ends = this._edgeEnds(g._edge);
    const d = ends ? curve(ends[0], ends[1]) : "";
    g.firstChild.setAttribute("d", d);
    g.lastChild.setAttribute("d", d);
  }

  setSelection(ids, { emit = true } = {}) {
    this.selection = new Set(ids);
    if (this.selection.size) this.selectedEdge = null;
    for (const [id, el] of this.nodeEls) el.classList.toggle("selected", this.selection.has(id));
    for (const g of this.edgeEls.values()) g.classList.toggle("selected", +g.dataset.index === this.selectedEdge);
    if (emit) this._emit("select", { ids: [...this.selection] });
  }

  selectEdge(index) {
    this.selectedEdge = index;
    if (index !== null) this.setSelection([], { emit: true });
    for (const g of this.edgeEls.values()) g.classList.toggle("selected", +g.dataset.index === index);
    this._emit("edgeselect", { index });
  }

  // problems: Map(node id -> [messages]); edges: Set(edge index)
  setProblems(problems, edges = new Set()) {
    this.problems = problems;
    this.edgeProblems = edges;
    for (const [id, el] of this.nodeEls) this._decorateNode(el, id);
    for (const g of this.edgeEls.values()) g.classList.toggle("has-error", edges.has(+g.dataset.index));
  }

  // ---- viewport --------------------------------------------------------------------------

  _applyView() {
    const { x, y, k } = this.view;
    this.world.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
    this.root.style.backgroundPosition = `${x}px ${y}px`;
    this.root.style.backgroundSize = `${24 * k}px ${24 * k}px`;
    this._emit("viewport", { ...this.view });
  }

  clientToCanvas(cx, cy) {
    const r = this.root.getBoundingClientRect();
    return { x: (cx - r.left - this.view.x) / this.view.k, y: (cy - r.top - this.view.y) / this.view.k };
  }

  zoomAt(k, cx, cy) {
    k = Math.min(MAX_K, Math.max(MIN_K, k));
    const r = this.root.getBoundingClientRect();
    const px = cx ?? r.left + r.width / 2, py = cy ?? r.top + r.height / 2;
    const p = this.clientToCanvas(px, py);
    this.view.k = k;
    this.view.x = px - r.left - p.x * k;
    this.view.y = py - r.top - p.y * k;
    this._applyView();
  }

  zoomBy(f) { this.zoomAt(this.view.k * f); }

  fit(padding = 60) {
    const nodes = this.def.nodes;
    const r = this.root.getBoundingClientRect();
    if (!nodes.length || !r.width) { this.view = { x: 40, y: 40, k: 1 }; this._applyView(); return; }
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const h = nodeHeight(this.types.ports(n.type));
      x0 = Math.min(x0, n.position.x); y0 = Math.min(y0, n.position.y);
      x1 = Math.max(x1, n.position.x + NODE_W); y1 = Math.max(y1, n.position.y + h + 24);
    }
    const k = Math.min(1.1, Math.max(MIN_K, Math.min((r.width - 2 * padding) / (x1 - x0), (r.height - 2 * padding) / (y1 - y0))));
    this.view = { k, x: (r.width - (x1 - x0) * k) / 2 - x0 * k, y: (r.height - (y1 - y0) * k) / 2 - y0 * k };
    this._applyView();
  }

  centerOn(id) {
    const n = this.byId.get(id);
    if (!n) return;
    const r = this.root.getBoundingClientRect();
    const k = this.view.k;
    this.view.x = r.width / 2 - (n.position.x + NODE_W / 2) * k;
    this.view.y = r.height / 2 - (n.position.y + HEAD_H) * k;
    this._applyView();
  }

  _onWheel(e) {
    e.preventDefault();
    if (e.ctrlKey || e.metaKey || !e.shiftKey) {
      const f = Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015));
      this.zoomAt(this.view.k * f, e.clientX, e.clientY);
    } else {
      this.view.x -= e.deltaX || e.deltaY;
      this._applyView();
    }
  }

  // ---- pointer interaction ---------------------------------------------------------------

  _onPointerDown(e) {
    if (e.button !== 0 && e.button !== 1) return;
    const port = e.target.closest(".port");
    const nodeEl = e.target.closest(".node");
    const edgeEl = e.target.closest(".edge");
    this.root.focus({ preventScroll: true });
    if (e.target.closest(".node-delete") && nodeEl) {
      e.preventDefault();
      this._emit("deleterequest", { ids: [nodeEl.dataset.id] });
      return;
    }
    if (port && port.dataset.side === "out" && e.button === 0) return this._startConnect(e, nodeEl, port);
    if (port && port.dataset.side === "in" && e.button === 0) {
      // Dragging from a connected input detaches its edge (and lets you re-attach it elsewhere).
      const id = nodeEl.dataset.id;
      const idx = this.def.edges.findIndex((ed) => ed.target === id && (ed.target_port ?? "in") === port.dataset.port);
      if (idx >= 0) {
        const ed = this.def.edges[idx];
        const srcEl = this.nodeEls.get(ed.source);
        const srcPort = srcEl && srcEl.querySelector(`.port-out[data-port="${CSS.escape(ed.source_port ?? "out")}"]`);
        if (srcPort) return this._startConnect(e, srcEl, srcPort, idx);
      }
      return;
    }
    if (nodeEl && e.button === 0) return this._startDrag(e, nodeEl);
    if (edgeEl && e.button === 0) {
      e.preventDefault();
      this.selectEdge(+edgeEl.dataset.index);
      return;
    }
    if (e.shiftKey && e.button === 0) return this._startMarquee(e);
    this._startPan(e);
  }

  _track(onMove, onUp) {
    const move = (ev) => onMove(ev);
    const up = (ev) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", up);
      this.root.classList.remove("interacting");
      onUp(ev);
    };
    this.root.classList.add("interacting");
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
  }

  _startPan(e) {
    e.preventDefault();
    const sx = e.clientX, sy = e.clientY, vx = this.view.x, vy = this.view.y;
    let moved = false;
    this.root.classList.add("panning");
    this._track((ev) => {
      if (Math.abs(ev.clientX - sx) + Math.abs(ev.clientY - sy) > 3) moved = true;
      this.view.x = vx + ev.clientX - sx;
      this.view.y = vy + ev.clientY - sy;
      this._applyView();
    }, () => {
      this.root.classList.remove("panning");
      if (!moved) {
        if (this.selectedEdge !== null) this.selectEdge(null);
        if (this.selection.size) this.setSelection([]);
      }
    });
  }

  _startMarquee(e) {
    e.preventDefault();
    const r = this.root.getBoundingClientRect();
    const sx = e.clientX, sy = e.clientY;
    const m = this.marquee;
    const base = new Set(this.selection);
    m.style.display = "block";
    const update = (ev) => {
      const x0 = Math.min(sx, ev.clientX), y0 = Math.min(sy, ev.clientY);
      const x1 = Math.max(sx, ev.clientX), y1 = Math.max(sy, ev.clientY);
      Object.assign(m.style, { left: `${x0 - r.left}px`, top: `${y0 - r.top}px`, width: `${x1 - x0}px`, height: `${y1 - y0}px` });
      const a = this.clientToCanvas(x0, y0), b = this.clientToCanvas(x1, y1);
      const ids = new Set(base);
      for (const n of this.def.nodes) {
        const h = nodeHeight(this.types.ports(n.type));
        if (n.position.x < b.x && n.position.x + NODE_W > a.x && n.position.y < b.y && n.position.y + h > a.y) ids.add(n.id);
      }
      this.setSelection(ids, { emit: false });
    };
    this._track(update, () => {
      m.style.display = "none";
      this.setSelection(this.selection);
    });
  }

  _startDrag(e, nodeEl) {
    e.preventDefault();
    const id = nodeEl.dataset.id;
    if (e.shiftKey || e.metaKey || e.ctrlKey) {
      const ids = new Set(this.selection);
      if (ids.has(id)) ids.delete(id); else ids.add(id);
      this.setSelection(ids);
      return;
    }
    if (!this.selection.has(id)) this.setSelection([id]);
    else if (this.selectedEdge !== null) this.selectEdge(null);
    const start = this.clientToCanvas(e.clientX, e.clientY);
    const moving = [...this.selection].map((nid) => this.byId.get(nid)).filter(Boolean)
      .map((n) => ({ node: n, x: n.position.x, y: n.position.y, el: this.nodeEls.get(n.id) }));
    let moved = false;
    let frame = 0, last = null;
    const apply = () => {
      frame = 0;
      const p = this.clientToCanvas(last.clientX, last.clientY);
      const dx = p.x - start.x, dy = p.y - start.y;
      if (!moved && Math.abs(dx) + Math.abs(dy) < 3 / this.view.k) return;
      moved = true;
      const touched = new Set();
      for (const m of moving) {
        // Positions are updated on a private copy of the node; the definition changes on "move".
        m.node = { ...m.node, position: { x: snap(m.x + dx), y: snap(m.y + dy) } };
        this.byId.set(m.node.id, m.node);
        this._placeNode(m.el, m.node);
        for (const g of this.edgeIndex.get(m.node.id) || []) touched.add(g);
      }
      for (const g of touched) this._drawEdge(g);
    };
    this._track((ev) => {
      last = ev;
      if (!frame) frame = requestAnimationFrame(apply);
    }, (ev) => {
      if (frame) cancelAnimationFrame(frame);
      if (last) apply();
      if (!moved) {
        // A plain click on a node of a multi-selection selects just that node.
        if (this.selection.size > 1) this.setSelection([id]);
        return;
      }
      const positions = {};
      for (const m of moving) positions[m.node.id] = m.node.position;
      this._emit("move", { positions });
    });
  }

  _startConnect(e, nodeEl, portEl, detachIndex = null) {
    e.preventDefault();
    const src = this.byId.get(nodeEl.dataset.id);
    const sport = portEl.dataset.port;
    const a = portPoint(src, this.types.ports(src.type), "out", sport);
    this.root.classList.add("connecting");
    if (detachIndex !== null) {
      const g = this.svg.querySelector(`.edge[data-index="${detachIndex}"]`);
      if (g) g.style.display = "none";
    }
    let hover = null;
    this._track((ev) => {
      const b = this.clientToCanvas(ev.clientX, ev.clientY);
      this.tempPath.setAttribute("d", curve(a, b));
      const under = document.elementFromPoint(ev.clientX, ev.clientY);
      const p = under && under.closest(".port-in");
      if (hover && hover !== p) hover.classList.remove("port-hover");
      hover = p;
      if (p) p.classList.add("port-hover");
    }, (ev) => {
      this.tempPath.setAttribute("d", "");
      this.root.classList.remove("connecting");
      if (hover) hover.classList.remove("port-hover");
      const under = document.elementFromPoint(ev.clientX, ev.clientY);
      const target = under && (under.closest(".port-in") || null);
      const tnode = under && under.closest(".node");
      let detail = null;
      if (target && tnode) {
        detail = { source: src.id, source_port: sport, target: tnode.dataset.id, target_port: target.dataset.port };
      } else if (tnode && tnode.dataset.id !== src.id) {
        // Dropped on a node body: use its first input.
        const ins = this.types.ports(tnode.dataset.type).inputs;
        if (ins.length) detail = { source: src.id, source_port: sport, target: tnode.dataset.id, target_port: ins[0] };
      }
      if (detachIndex !== null) {
        const g = this.svg.querySelector(`.edge[data-index="${detachIndex}"]`);
        if (g) g.style.display = "";
        const old = this.def.edges[detachIndex];
        if (detail && edgeKey(detail) === edgeKey(old)) return;
        this._emit("disconnect", { index: detachIndex, then: detail });
        return;
      }
      if (detail) this._emit("connect", detail);
    });
  }
}
