// The palette: node types by category, filtered by the search box; an item is dragged onto the
// canvas (the canvas reports the drop) or added at the middle of the view with Enter or a
// double-click.
import { HEAD_H } from "./canvas.js";
import { setIcon } from "./icons.js";
import { CATEGORIES } from "./model.js";
import { NODE_W } from "./node-size.js";
import { h } from "./ui.js";

export function palette(ed) {
  const { state, types, canvas, $ } = ed;
  const root = $("#palette-groups");
  for (const cat of CATEGORIES) {
    const items = types.inCategory(cat.key);
    if (!items.length) continue;
    root.append(h("div", { class: "palette-group", "data-category": cat.key },
      h("div", { class: "palette-title" }, cat.label),
      items.map((t) => {
        const item = h("div", {
          class: `palette-item cat-${t.category}`, draggable: "true", tabindex: 0, role: "button",
          "data-type": t.key, title: `${t.description}\n\nDrag onto the canvas, or press Enter to add.`,
        },
        setIcon(h("span", { class: "palette-icon" }), t.key, t.icon || "•"),
        h("span", { class: "palette-text" }, h("span", { class: "palette-label" }, t.label),
          h("span", { class: "palette-desc" }, t.description)));
        item.addEventListener("dragstart", (e) => {
          e.dataTransfer.setData("application/x-stepwell-node", t.key);
          e.dataTransfer.setData("text/plain", t.key);
          e.dataTransfer.effectAllowed = "copy";
        });
        const addAtCenter = () => {
          const r = canvas.root.getBoundingClientRect();
          const p = canvas.clientToCanvas(r.left + r.width / 2, r.top + r.height / 2);
          ed.addNode(t.key, { x: Math.round(p.x - NODE_W / 2 + 20 * (state.def.nodes.length % 5)), y: Math.round(p.y - HEAD_H) });
        };
        item.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); addAtCenter(); } });
        item.addEventListener("dblclick", addAtCenter);
        return item;
      })));
  }
  $("#palette-search").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const item of root.querySelectorAll(".palette-item")) {
      item.hidden = q && !item.textContent.toLowerCase().includes(q);
    }
    for (const g of root.querySelectorAll(".palette-group")) {
      g.hidden = ![...g.querySelectorAll(".palette-item")].some((i) => !i.hidden);
    }
  });
  return {};
}
