// The version history drawer: the saved versions, newest first; one can be viewed as JSON or
// restored (which saves it again as the newest version, after asking about unsaved changes).
import { api } from "./api.js";
import { normalize } from "./model.js";
import { confirmDialog, h, modal, relativeTime, toast } from "./ui.js";

export function versions(ed) {
  const { state, canvas, $ } = ed;

  async function openHistory() {
    const drawer = $("#history");
    drawer.hidden = false;
    ed.closeJson();
    const list = $("#history-list");
    list.replaceChildren(h("li", { class: "muted" }, "Loading…"));
    try {
      const res = await api.versions(state.id);
      const all = res.results || res;
      list.replaceChildren(...all.map((v) => h("li", { class: `version ${v.number === state.version ? "current" : ""}`, "data-version": v.number },
        h("div", { class: "version-head" },
          h("span", { class: "badge" }, `v${v.number}`),
          v.number === state.version ? h("span", { class: "tag" }, "current") : null,
          h("span", { class: "muted small" }, relativeTime(v.created))),
        h("div", { class: "version-meta small" }, v.message || "saved", v.author ? ` · ${v.author}` : ""),
        h("div", { class: "version-actions" },
          h("button", { class: "btn btn-sm", type: "button", onclick: () => viewVersion(v.number) }, "View"),
          v.number === state.version ? null
            : h("button", { class: "btn btn-sm", type: "button", onclick: () => restoreVersion(v.number) }, "Restore")))));
    } catch (err) {
      list.replaceChildren(h("li", { class: "alert alert-error" }, err.message));
    }
  }

  async function viewVersion(n) {
    try {
      const v = await api.version(state.id, n);
      await modal({
        title: `Version ${n}`, className: "modal-wide",
        body: h("pre", { class: "json-pre" }, JSON.stringify(v.definition, null, 2)),
        buttons: [{ label: "Close", value: "cancel" }, { label: `Restore v${n}`, value: "restore", kind: "primary" }],
        onSubmit: async (value) => { if (value === "restore") await restoreVersion(n); },
      });
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function restoreVersion(n) {
    if (ed.isDirty() && !(await confirmDialog("Discard unsaved changes?", `Restoring v${n} replaces your unsaved changes.`, { confirmLabel: "Restore", danger: true }))) return;
    try {
      const v = await api.restoreVersion(state.id, n);
      const before = JSON.stringify(state.def);
      state.def = normalize(v.definition);
      state.version = v.number;
      state.saved = JSON.stringify(state.def);
      ed.history.record(before);
      canvas.setSelection([]);
      ed.changed("history");
      toast(`Restored v${n} as version ${v.number}`, "success");
      openHistory();
    } catch (err) {
      toast(`Restore failed: ${err.message}`, "error");
    }
  }

  $("#btn-history").addEventListener("click", () => ($("#history").hidden ? openHistory() : ($("#history").hidden = true)));
  $("#history-close").addEventListener("click", () => { $("#history").hidden = true; });

  return {};
}
