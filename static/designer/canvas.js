// The canvas: renders a definition with AntV X6 (HTML node cards in foreignObjects, X6 ports and
// edges) and turns X6's interaction into events. X6 does the drawing, dragging, connecting,
// selecting, panning and zooming; the canvas never changes the definition itself: it reports what
// the user did and the page controller commits, then calls render(def) with the new definition.
//
// Events (CustomEvent, detail in braces):
//   select {ids}                    selection changed (node ids)
//   edgeselect {index}              an edge was clicked (index into definition.edges, or null)
//   move {positions: {id: {x,y}}}   nodes were dragged to new positions
//   connect {source, source_port, target, target_port}
//   disconnect {index, then}        an edge was picked up at its input and dropped (then: new edge or null)
//   deleterequest {ids}             a node's delete button was pressed
//   droptype {type, position}       a palette item was dropped at canvas coordinates
//   open {id}                       a node was double-clicked
//   viewport {x, y, k}              pan/zoom changed

import "../vendor/x6/x6.min.js";  // UMD build: defines globalThis.X6
import { edgeKey } from "./model.js";
import { setIcon } from "./icons.js";
import { NODE_W } from "./node-size.js";

const X6 = globalThis.X6;
const { Graph, Shape, Selection, NodeView, EdgeView, Path } = X6;

export const HEAD_H = 54;
export const ROW_H = 26;
export const PAD = 6;
const GRID = 10;
const MIN_K = 0.2, MAX_K = 2;
const NODE_SHAPE = "stepwell-node";
const EDGE_SHAPE = "stepwell-edge";

function portRows(ports) {
  return Math.max(ports.inputs.length, ports.outputs.length, 1);
}

export function nodeHeight(ports) {
  return HEAD_H + PAD * 2 + portRows(ports) * ROW_H;
}

function curve(a, b) {
  const dx = Math.max(40, Math.abs(b.x - a.x) * 0.5);
  return `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x} ${b.y}`;
}

const snap = (v) => Math.round(v / GRID) * GRID;
const portId = (side, name) => `${side}:${name}`;
const portName = (id) => (id || "").replace(/^(in|out):/, "");

// ---- X6 registrations (once per page) -------------------------------------------------------

let registered = false;
let activeCanvas = null;  // the views below report to the canvas that owns their graph

function register() {
  if (registered) return;
  registered = true;

  Graph.registerConnector("stepwell", (s, t, _route, options = {}) => {
    const d = curve(s, t);
    return options.raw ? Path.parse(d) : d;
  }, true);

  // Pressing a connected input picks its edge up there (X6's arrowhead dragging), so it can be
  // dropped on another input or on nothing to remove it.
  const HtmlView = NodeView.registry.get("html-view");
  class StepNodeView extends HtmlView {
    startMagnetDragging(e, x, y) {
      const canvas = activeCanvas;
      const magnet = e.currentTarget;
      const port = magnet.closest && magnet.closest(".port");
      if (canvas && port && port.dataset.side === "in") {
        const index = canvas.def.edges.findIndex((ed) => ed.target === this.cell.id && (ed.target_port ?? "in") === port.dataset.port);
        const edgeCell = index >= 0 && canvas.edgeCells.get(edgeKey(canvas.def.edges[index]));
        const edgeView = edgeCell && this.graph.findViewByCell(edgeCell);
        e.stopPropagation();
        if (!edgeView) return;
        edgeView.setEventData(e, {
          ...edgeView.prepareArrowheadDragging("target", { x, y, fallbackAction: "revert" }),
          detachIndex: index,
        });
        this.graph.view.delegateDragEvents(e, edgeView);
        canvas.root.classList.add("connecting");
        return;
      }
      super.startMagnetDragging(e, x, y);
    }
  }
  NodeView.registry.register("stepwell-node-view", StepNodeView, true);

  class StepEdgeView extends EdgeView {
    stopArrowheadDragging(e, x, y) {
      const data = this.getEventData(e);
      const canvas = activeCanvas;
      if (!canvas) return super.stopArrowheadDragging(e, x, y);
      canvas._connected = null;
      super.stopArrowheadDragging(e, x, y);
      canvas.root.classList.remove("connecting");
      canvas._afterArrowhead(this.cell, data, e);
    }
  }
  EdgeView.registry.register("stepwell-edge-view", StepEdgeView, true);

  // Node: the card is our own HTML element (built by the canvas) inside X6's foreignObject.
  Shape.HTML.register({
    shape: NODE_SHAPE,
    width: NODE_W,
    height: 100,
    view: "stepwell-node-view",
    effect: [],
    html: (cell) => (activeCanvas && activeCanvas.cards.get(cell.id)) || null,
    ports: {
      groups: {
        in: {
          position: "absolute",
          markup: [{ tagName: "g", selector: "wrap", className: "port port-in",
            children: [{ tagName: "circle", selector: "dot", className: "port-dot" }] }],
          attrs: { dot: { r: 6, magnet: true } },
        },
        out: {
          position: "absolute",
          markup: [{ tagName: "g", selector: "wrap", className: "port port-out",
            children: [{ tagName: "circle", selector: "dot", className: "port-dot" }] }],
          attrs: { dot: { r: 6, magnet: true } },
        },
      },
    },
  });

  Graph.registerEdge(EDGE_SHAPE, {
    markup: [
      { tagName: "path", selector: "wrap", className: "edge-hit" },
      { tagName: "path", selector: "line", className: "edge-path" },
    ],
    attrs: {
      wrap: { connection: true, fill: "none", stroke: "transparent", strokeWidth: 14 },
      line: { connection: true, fill: "none", stroke: "#8b93a7", strokeWidth: 2.2 },
    },
    zIndex: 0,
    view: "stepwell-edge-view",
  }, true);
}

// ---- the canvas ---------------------------------------------------------------------------------

export class Canvas extends EventTarget {
  constructor(root, types) {
    super();
    register();
    activeCanvas = this;
    this.types = types;
    this.root = root;
    this.def = { nodes: [], edges: [] };
    this.selection = new Set();
    this.selectedEdge = null;
    this.problems = new Map();      // node id -> [messages]
    this.edgeProblems = new Set();  // edge indexes
    this.nodeCells = new Map();     // id -> X6 node
    this.edgeCells = new Map();     // edgeKey -> X6 edge
    this.nodeEls = new Map();       // id -> view container (the `.node` element)
    this.byId = new Map();
    this.cards = new Map();         // id -> the node's HTML card
    this.statuses = null;           // node id -> run status (setStatuses)
    this.pins = new Set();          // ids of nodes with pinned data (setPins): a badge
    this._mute = 0;

    root.classList.add("canvas");
    root.tabIndex = 0;
    this.graph = new Graph({
      container: root,
      autoResize: true,
      async: false,
      grid: { size: GRID, visible: false },
      background: false,
      panning: { enabled: true, eventTypes: ["leftMouseDown", "mouseWheelDown"] },
      mousewheel: {
        enabled: true, zoomAtMousePosition: true, factor: 1.1, minScale: MIN_K, maxScale: MAX_K,
        guard: (e) => !(e.shiftKey && !e.ctrlKey && !e.metaKey),
      },
      scaling: { min: MIN_K, max: MAX_K },
      interacting: {
        nodeMovable: true, magnetConnectable: true, edgeMovable: false, edgeLabelMovable: false,
        arrowheadMovable: false, vertexMovable: false, vertexAddable: false, vertexDeletable: false,
      },
      connecting: {
        connector: "stepwell",
        anchor: "center",
        connectionPoint: "anchor",
        allowBlank: false,
        allowLoop: true,      // the controller explains why a self-loop is refused
        allowMulti: true,     // ... and a duplicate
        allowNode: true,      // dropped on a node's body: its first input
        allowEdge: false,
        allowPort: true,
        highlight: true,
        createEdge() { return this.createEdge({ shape: EDGE_SHAPE }); },
        validateMagnet: ({ magnet }) => {
          const port = magnet.closest && magnet.closest(".port");
          return !!port && port.dataset.side === "out";
        },
        validateConnection: ({ targetMagnet, targetView }) => {
          if (!targetView || !targetView.cell.isNode()) return false;
          if (!targetMagnet) return true;
          const port = targetMagnet.closest && targetMagnet.closest(".port");
          return !port || port.dataset.side === "in";
        },
      },
      highlighting: {
        magnetAvailable: { name: "className", args: { className: "port-available" } },
        magnetAdsorbed: { name: "className", args: { className: "port-hover" } },
      },
    });
    this.selectionPlugin = new Selection({
      enabled: true,
      multiple: true,
      multipleSelectionModifiers: ["shift", "ctrl", "meta"],
      rubberband: true,
      modifiers: "shift",
      movable: true,
      showNodeSelectionBox: false,
      showEdgeSelectionBox: false,
      pointerEvents: "none",
      filter: (cell) => cell.isNode(),
    });
    this.graph.use(this.selectionPlugin);
    this._wire();
    this._applyView();
  }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  get view() {
    const t = this.graph.translate();
    return { x: t.tx, y: t.ty, k: this.graph.scale().sx };
  }

  // ---- X6 events → canvas events ---------------------------------------------------------

  _wire() {
    const g = this.graph, root = this.root;
    root.addEventListener("mousedown", (e) => {
      if (!e.target.closest("input, textarea, select")) root.focus({ preventScroll: true });
    }, true);
    // Shift+wheel scrolls sideways (X6 zooms on the other wheel events).
    root.addEventListener("wheel", (e) => {
      if (!e.shiftKey || e.ctrlKey || e.metaKey) return;
      e.preventDefault();
      const { x, y, k } = this.view;
      this._setView(x - (e.deltaX || e.deltaY), y, k);
    }, { passive: false });
    g.on("selection:changed", () => this._syncSelection());
    g.on("node:mousedown", ({ e, node }) => {
      if (e.target.closest && e.target.closest(".node-delete")) return;
      if (this.selectedEdge !== null) this.selectEdge(null);
      if (e.shiftKey || e.ctrlKey || e.metaKey) return;
      if (!this.selection.has(node.id)) this.setSelection([node.id]);
    });
    g.on("node:delete", ({ node }) => this._emit("deleterequest", { ids: [node.id] }));
    g.on("node:dblclick", ({ e, node }) => {
      if (!(e.target.closest && e.target.closest(".node-delete"))) this._emit("open", { id: node.id });
    });
    g.on("node:moved", () => {
      const positions = {};
      const ids = new Set(this.selection);
      for (const id of ids) {
        const cell = this.nodeCells.get(id);
        if (!cell) continue;
        const p = cell.getPosition();
        positions[id] = { x: snap(p.x), y: snap(p.y) };
      }
      this._emit("move", { positions });
    });
    g.on("edge:click", ({ edge }) => {
      const index = this.def.edges.findIndex((e) => edgeKey(e) === edge.id);
      if (index >= 0) this.selectEdge(index);
    });
    g.on("blank:click", () => {
      if (this.selectedEdge !== null) this.selectEdge(null);
    });
    g.on("edge:connected", ({ edge, isNew }) => { this._connected = { edge, isNew }; });
    g.on("scale", () => this._applyView());
    g.on("translate", () => this._applyView());

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
  }

  // An X6 arrowhead drag ended: a new edge from an output, or an edge picked up at its input.
  // The X6 edge is put back as it was (or removed) and the controller decides.
  _afterArrowhead(edge, data, e) {
    const connected = this._connected;
    this._connected = null;
    let detail = null;
    if (connected && connected.edge === edge) {
      const src = edge.getSource(), tgt = edge.getTarget();
      let tport = tgt.port ? portName(tgt.port) : null;
      if (!tport && tgt.cell) {
        const tnode = this.byId.get(tgt.cell);
        const ins = tnode ? this.types.ports(tnode.type).inputs : [];
        tport = ins[0] || null;
      }
      if (tgt.cell && tport) {
        detail = { source: src.cell, source_port: portName(src.port), target: tgt.cell, target_port: tport };
      }
    }
    if (data.detachIndex !== undefined) {
      const old = this.def.edges[data.detachIndex];
      // Put the X6 edge back; render() moves or removes it once the controller has committed.
      edge.setTarget({ cell: old.target, port: portId("in", old.target_port ?? "in") });
      if (!detail) {
        // Dropped back on its own input: nothing happened.
        const under = document.elementFromPoint(e.clientX, e.clientY);
        const port = under && under.closest && under.closest(".port-in");
        const nodeEl = port && port.closest(".node");
        if (nodeEl && nodeEl.dataset.id === old.target && port.dataset.port === (old.target_port ?? "in")) return;
      } else if (edgeKey(detail) === edgeKey(old)) {
        return;
      }
      this._emit("disconnect", { index: data.detachIndex, then: detail });
      return;
    }
    if (data.isNewEdge && edge.model) edge.remove();
    if (detail) this._emit("connect", detail);
  }

  // ---- rendering -------------------------------------------------------------------------

  render(def) {
    const t0 = performance.now();
    this.def = def;
    this.byId = new Map(def.nodes.map((n) => [n.id, n]));
    const g = this.graph;
    const seen = new Set();
    g.startBatch("render");
    for (const node of def.nodes) {
      seen.add(node.id);
      let cell = this.nodeCells.get(node.id);
      const sig = JSON.stringify([node.type, node.name, node.parent || null]);
      if (cell && cell._sig !== sig) {
        if (cell._type !== node.type) {
          this._removeNode(node.id);
          cell = null;
        } else {
          this._replaceCard(cell, node);
        }
      }
      if (!cell) cell = this._addNode(node);
      const { x, y } = node.position || { x: 0, y: 0 };
      const p = cell.getPosition();
      if (p.x !== x || p.y !== y) cell.setPosition(x, y, { silent: false });
      this._decorateNode(node.id);
    }
    for (const id of [...this.nodeCells.keys()]) if (!seen.has(id)) this._removeNode(id);
    const gone = [...this.selection].filter((id) => !seen.has(id));
    if (gone.length) this.setSelection([...this.selection].filter((id) => seen.has(id)), { emit: false });
    this._renderEdges();
    g.stopBatch("render");
    this.lastRenderMs = performance.now() - t0;
  }

  _addNode(node) {
    const ports = this.types.ports(node.type);
    const items = [
      ...ports.inputs.map((p, i) => ({ id: portId("in", p), group: "in", args: { x: 0, y: HEAD_H + PAD + i * ROW_H + ROW_H / 2 } })),
      ...ports.outputs.map((p, i) => ({ id: portId("out", p), group: "out", args: { x: NODE_W, y: HEAD_H + PAD + i * ROW_H + ROW_H / 2 } })),
    ];
    const { x, y } = node.position || { x: 0, y: 0 };
    this.cards.set(node.id, this._buildCard(node));
    const cell = this.graph.addNode({
      id: node.id, shape: NODE_SHAPE, x, y, width: NODE_W, height: nodeHeight(ports),
      ports: { items },
    });
    cell._sig = JSON.stringify([node.type, node.name, node.parent || null]);
    cell._type = node.type;
    this.nodeCells.set(node.id, cell);
    const view = this.graph.findViewByCell(cell);
    const el = view.container;
    const type = this.types.get(node.type);
    el.classList.add("node", `cat-${type ? type.category : "unknown"}`);
    el.dataset.id = node.id;
    el.dataset.type = node.type;
    el.classList.toggle("in-loop", !!node.parent);
    for (const p of el.querySelectorAll(".port")) {
      const id = p.closest("[port]")?.getAttribute("port") || "";
      p.dataset.side = id.startsWith("in:") ? "in" : "out";
      p.dataset.port = portName(id);
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${p.dataset.side === "in" ? "Input" : "Output"} “${p.dataset.port}”`;
      p.append(title);
    }
    el._card = this.cards.get(node.id);
    this.nodeEls.set(node.id, el);
    return cell;
  }

  _replaceCard(cell, node) {
    const card = this._buildCard(node);
    this.cards.set(node.id, card);
    cell._sig = JSON.stringify([node.type, node.name, node.parent || null]);
    const el = this.nodeEls.get(node.id);
    el._card.replaceWith(card);
    el._card = card;
    el.classList.toggle("in-loop", !!node.parent);
  }

  _removeNode(id) {
    const cell = this.nodeCells.get(id);
    if (cell) this.graph.removeCell(cell);
    this.nodeCells.delete(id);
    this.nodeEls.delete(id);
    this.cards.delete(id);
  }

  _buildCard(node) {
    const type = this.types.get(node.type);
    const ports = this.types.ports(node.type);
    const card = document.createElement("div");
    card.className = "node-card";

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
    }
    titles.append(name, sub);
    const del = document.createElement("button");
    del.className = "node-delete";
    del.type = "button";
    del.title = "Delete node";
    del.setAttribute("aria-label", "Delete node");
    del.setAttribute("data-event", "node:delete");
    del.textContent = "×";
    head.append(icon, titles, del);

    const body = document.createElement("div");
    body.className = "node-ports";
    body.style.height = `${portRows(ports) * ROW_H + PAD * 2}px`;
    const row = (side, pname, i) => {
      const r = document.createElement("div");
      r.className = `port-row port-row-${side}`;
      r.style.top = `${PAD + i * ROW_H}px`;
      r.style.height = `${ROW_H}px`;
      const label = document.createElement("span");
      label.className = "port-label";
      label.textContent = pname;
      r.append(label);
      return r;
    };
    ports.inputs.forEach((p, i) => body.append(row("in", p, i)));
    ports.outputs.forEach((p, i) => body.append(row("out", p, i)));
    const err = document.createElement("div");
    err.className = "node-error";
    const status = document.createElement("div");
    status.className = "node-status";
    card.append(head, body, err, status);
    return card;
  }

  _decorateNode(id) {
    const el = this.nodeEls.get(id);
    if (!el) return;
    el.classList.toggle("selected", this.selection.has(id));
    if (this.statuses || el.dataset.status) this._decorateStatus(id);
    const msgs = this.problems.get(id);
    el.classList.toggle("has-error", !!msgs);
    const err = el._card.querySelector(".node-error");
    if (msgs) {
      const text = msgs[0] + (msgs.length > 1 ? ` (+${msgs.length - 1} more)` : "");
      if (err.textContent !== text) err.textContent = text;
      err.title = msgs.join("\n");
    } else if (err.textContent) {
      err.textContent = "";
      err.title = "";
    }
    this._decoratePin(id, el);
  }

  // Nodes with pinned output data get a "pinned" badge (ids; empty clears).
  setPins(ids) {
    this.pins = new Set(ids || []);
    for (const [id, el] of this.nodeEls) this._decoratePin(id, el);
  }

  _decoratePin(id, el) {
    const on = this.pins.has(id);
    el.classList.toggle("is-pinned", on);
    let badge = el._card.querySelector(".node-pin-badge");
    if (on && !badge) {
      badge = document.createElement("span");
      badge.className = "node-pin-badge";
      badge.append(setIcon(document.createElement("span"), "pin"), "pinned");
      badge.title = "This step has pinned output data (used by tests, and by runs with “Use pinned data”)";
      el._card.querySelector(".node-head").append(badge);
    } else if (!on && badge) badge.remove();
  }

  // Pan so that node `id`'s box is inside the visible canvas (with `margin` px around it).
  ensureVisible(id, margin = 24) {
    const el = this.nodeEls.get(id);
    if (!el) return;
    const r = this.root.getBoundingClientRect(), b = el.getBoundingClientRect();
    let dx = 0, dy = 0;
    if (b.right > r.right - margin) dx = r.right - margin - b.right;
    if (b.left + dx < r.left + margin) dx = r.left + margin - b.left;
    if (b.bottom > r.bottom - margin) dy = r.bottom - margin - b.bottom;
    if (b.top + dy < r.top + margin) dy = r.top + margin - b.top;
    if (dx || dy) this._setView(this.view.x + dx, this.view.y + dy, this.view.k);
  }

  _renderEdges() {
    const seen = new Set();
    this.def.edges.forEach((e, i) => {
      const key = edgeKey(e);
      seen.add(key);
      let cell = this.edgeCells.get(key);
      if (cell && !this.graph.hasCell(cell.id)) { this.edgeCells.delete(key); cell = null; }
      if (!cell) {
        if (!this.nodeCells.has(e.source) || !this.nodeCells.has(e.target)) return;
        cell = this.graph.addEdge({
          id: key, shape: EDGE_SHAPE,
          source: { cell: e.source, port: portId("out", e.source_port ?? "out") },
          target: { cell: e.target, port: portId("in", e.target_port ?? "in") },
        });
        this.edgeCells.set(key, cell);
        const el = this.graph.findViewByCell(cell).container;
        el.classList.add("edge");
        el.dataset.source = e.source;
        el.dataset.target = e.target;
        el.dataset.sourcePort = e.source_port ?? "out";
        el.dataset.targetPort = e.target_port ?? "in";
        cell._el = el;
      }
      const el = cell._el;
      if (el.dataset.index !== String(i)) el.dataset.index = i;
      el.classList.toggle("selected", this.selectedEdge === i);
      el.classList.toggle("has-error", this.edgeProblems.has(i));
    });
    for (const [key, cell] of [...this.edgeCells]) {
      if (!seen.has(key)) {
        if (this.graph.hasCell(cell.id)) this.graph.removeCell(cell);
        this.edgeCells.delete(key);
      }
    }
  }

  // ---- selection -------------------------------------------------------------------------

  _syncSelection() {
    const ids = new Set(this.selectionPlugin.getSelectedCells().filter((c) => c.isNode()).map((c) => c.id));
    const changed = ids.size !== this.selection.size || [...ids].some((id) => !this.selection.has(id));
    for (const id of new Set([...ids, ...this.selection])) {
      const el = this.nodeEls.get(id);
      if (el) el.classList.toggle("selected", ids.has(id));
    }
    this.selection = ids;
    if (ids.size && this.selectedEdge !== null) this._setEdgeClass(null);
    if (changed && !this._mute) this._emit("select", { ids: [...ids] });
  }

  setSelection(ids, { emit = true } = {}) {
    const cells = [...ids].map((id) => this.nodeCells.get(id)).filter(Boolean);
    this._mute += 1;
    try {
      this.selectionPlugin.reset(cells);
    } finally {
      this._mute -= 1;
    }
    this._syncSelection();
    if (this.selection.size) this._setEdgeClass(null);
    if (emit) this._emit("select", { ids: [...this.selection] });
  }

  _setEdgeClass(index) {
    this.selectedEdge = index;
    for (const cell of this.edgeCells.values()) cell._el.classList.toggle("selected", +cell._el.dataset.index === index);
  }

  selectEdge(index) {
    if (index !== null) this.setSelection([], { emit: true });
    this._setEdgeClass(index);
    this._emit("edgeselect", { index });
  }

  // problems: Map(node id -> [messages]); edges: Set(edge index)
  setProblems(problems, edges = new Set()) {
    this.problems = problems;
    this.edgeProblems = edges;
    for (const id of this.nodeEls.keys()) this._decorateNode(id);
    for (const cell of this.edgeCells.values()) cell._el.classList.toggle("has-error", edges.has(+cell._el.dataset.index));
  }

  // Run status per node: Map(node id -> status) (queued, running, succeeded, failed, ...); null clears.
  setStatuses(statuses) {
    this.statuses = statuses || null;
    for (const id of this.nodeEls.keys()) this._decorateStatus(id);
  }

  _decorateStatus(id) {
    const el = this.nodeEls.get(id);
    const s = this.statuses ? this.statuses.get(id) : undefined;
    if ((el.dataset.status || undefined) === s) return;
    if (s) el.dataset.status = s; else delete el.dataset.status;
    el._card.querySelector(".node-status").textContent = s ? s.replace("_", " ") : "";
  }

  // ---- viewport --------------------------------------------------------------------------

  _applyView() {
    const { x, y, k } = this.view;
    this.root.style.backgroundPosition = `${x}px ${y}px`;
    this.root.style.backgroundSize = `${24 * k}px ${24 * k}px`;
    this._emit("viewport", { x, y, k });
  }

  _setView(x, y, k) {
    this.graph.scale(k, k);
    this.graph.translate(x, y);
    this._applyView();
  }

  clientToCanvas(cx, cy) {
    const p = this.graph.clientToLocal(cx, cy);
    return { x: p.x, y: p.y };
  }

  zoomAt(k, cx, cy) {
    k = Math.min(MAX_K, Math.max(MIN_K, k));
    const r = this.root.getBoundingClientRect();
    const px = cx ?? r.left + r.width / 2, py = cy ?? r.top + r.height / 2;
    const p = this.clientToCanvas(px, py);
    this._setView(px - r.left - p.x * k, py - r.top - p.y * k, k);
  }

  zoomBy(f) { this.zoomAt(this.view.k * f); }

  fit(padding = 60) {
    const nodes = this.def.nodes;
    const r = this.root.getBoundingClientRect();
    if (!nodes.length || !r.width) { this._setView(40, 40, 1); return; }
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const h = nodeHeight(this.types.ports(n.type));
      x0 = Math.min(x0, n.position.x); y0 = Math.min(y0, n.position.y);
      x1 = Math.max(x1, n.position.x + NODE_W); y1 = Math.max(y1, n.position.y + h + 24);
    }
    const k = Math.min(1.1, Math.max(MIN_K, Math.min((r.width - 2 * padding) / (x1 - x0), (r.height - 2 * padding) / (y1 - y0))));
    this._setView((r.width - (x1 - x0) * k) / 2 - x0 * k, (r.height - (y1 - y0) * k) / 2 - y0 * k, k);
  }

  centerOn(id) {
    const n = this.byId.get(id);
    if (!n) return;
    const r = this.root.getBoundingClientRect();
    const k = this.view.k;
    this._setView(r.width / 2 - (n.position.x + NODE_W / 2) * k, r.height / 2 - (n.position.y + HEAD_H) * k, k);
  }
}
