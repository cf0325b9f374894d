// The version history drawer: the saved versions, newest first; one can be viewed as JSON or
// restored (which saves it again as the newest version, after asking about unsaved changes), and
// any two can be compared (as can the unsaved draft with the version it is based on): the changed
// JSON paths (GET .../versions/diff/) and a line diff of the definitions (jsdiff, vendored from
// npm's `diff` under <static>/vendor/diff/).
import { api, request } from "./api.js";
import { normalize } from "./model.js";
import { confirmDialog, h, modal, relativeTime, toast } from "./ui.js";

const CONTEXT = 3;   // unchanged lines kept around each change

// Stable text of a definition: keys sorted at every level, two-space indent (as the API's diff).
function pretty(value) {
  const sort = (v) => (Array.isArray(v) ? v.map(sort)
    : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])])) : v);
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

// The line diff of two definitions as a <div class="diff-lines">: added and removed lines, with
// CONTEXT unchanged lines around them and a fold marker for the rest.
export function lineDiff(oldDef, newDef) {
  return textDiff(pretty(oldDef), pretty(newDef));
}

export async function textDiff(oldText, newText) {
  const { diffLines } = await import("../vendor/diff/index.js");
  const rows = [];
  let oldNo = 0;
  let newNo = 0;
  for (const part of diffLines(oldText, newText)) {
    const lines = part.value.replace(/\n$/, "").split("\n");
    for (const text of lines) {
      if (part.added) rows.push({ kind: "add", text, no: ++newNo });
      else if (part.removed) rows.push({ kind: "del", text, no: ++oldNo });
      else { oldNo += 1; newNo += 1; rows.push({ kind: "ctx", text, no: newNo }); }
    }
  }
  const keep = rows.map(() => false);
  rows.forEach((r, i) => {
    if (r.kind === "ctx") return;
    for (let j = Math.max(0, i - CONTEXT); j <= Math.min(rows.length - 1, i + CONTEXT); j++) keep[j] = true;
  });
  const out = [];
  let skipped = 0;
  const fold = () => { if (skipped) out.push(h("div", { class: "diff-line diff-fold" }, `⋯ ${skipped} unchanged line${skipped === 1 ? "" : "s"}`)); skipped = 0; };
  rows.forEach((r, i) => {
    if (!keep[i]) { skipped += 1; return; }
    fold();
    out.push(h("div", { class: `diff-line diff-${r.kind}` },
      h("span", { class: "diff-sign" }, { add: "+", del: "−", ctx: " " }[r.kind]), h("span", { class: "diff-text" }, r.text)));
  });
  fold();
  const changed = rows.some((r) => r.kind !== "ctx");
  return h("div", { class: "diff-lines mono", "data-changed": String(changed) },
    changed ? out : h("div", { class: "muted small diff-same" }, "No differences."));
}

// The changed JSON paths; a changed multi-line text (a code step's code) also as its own line diff.
async function changeList(changes, truncated) {
  if (!changes.length) return null;
  const word = { added: "added", removed: "removed", changed: "changed" };
  const multiline = (v) => typeof v === "string" && v.includes("\n");
  const items = await Promise.all(changes.slice(0, 50).map(async (c) => h("li", { class: `diff-change diff-op-${c.op}`, "data-path": c.path },
    h("span", { class: "diff-op" }, word[c.op] || c.op), " ", h("code", {}, c.path),
    c.op === "changed" && (multiline(c.old) || multiline(c.new))
      ? h("div", { class: "diff-text-change" }, await textDiff(`${c.old}\n`, `${c.new}\n`)) : null)));
  return h("ul", { class: "diff-changes small" }, items,
    truncated || changes.length > 50 ? h("li", { class: "muted" }, "… and more") : null);
}

export function versions(ed) {
  const { state, canvas, $ } = ed;
  let all = [];

  async function openHistory() {
    const drawer = $("#history");
    drawer.hidden = false;
    ed.closeJson();
    const list = $("#history-list");
    list.replaceChildren(h("li", { class: "muted" }, "Loading…"));
    try {
      const res = await api.versions(state.id);
      all = res.results || res;
      list.replaceChildren(compareForm(), ...all.map((v) => h("li", { class: `version ${v.number === state.version ? "current" : ""}`, "data-version": v.number },
        h("div", { class: "version-head" },
          h("span", { class: "badge" }, `v${v.number}`),
          v.number === state.version ? h("span", { class: "tag" }, "current") : null,
          h("span", { class: "muted small" }, relativeTime(v.created))),
        h("div", { class: "version-meta small" }, v.message || "saved", v.author ? ` · ${v.author}` : ""),
        h("div", { class: "version-actions" },
          h("button", { class: "btn btn-sm", type: "button", onclick: () => viewVersion(v.number) }, "View"),
          v.number > 1 ? h("button", { class: "btn btn-sm btn-diff", type: "button", title: `What changed from v${v.number - 1} to v${v.number}`,
            onclick: () => showDiff(v.number - 1, v.number) }, "Diff") : null,
          v.number === state.version ? null
            : h("button", { class: "btn btn-sm", type: "button", onclick: () => restoreVersion(v.number) }, "Restore")))));
    } catch (err) {
      list.replaceChildren(h("li", { class: "alert alert-error" }, err.message));
    }
  }

  // "Compare [vA] with [vB]", and the unsaved draft against its version when there is one
  function compareForm() {
    const options = (selected) => all.map((v) => h("option", { value: v.number, selected: v.number === selected }, `v${v.number}`));
    const newest = all[0]?.number;
    const from = h("select", { id: "diff-from", "aria-label": "Compare from version" }, options(all[1]?.number ?? newest));
    const to = h("select", { id: "diff-to", "aria-label": "Compare with version" }, options(newest));
    return h("li", { class: "version-compare" },
      h("div", { class: "compare-row small" }, "Compare ", from, " with ", to,
        h("button", { class: "btn btn-sm", type: "button", id: "btn-compare", onclick: () => showDiff(+from.value, +to.value) }, "Compare")),
      ed.isDirty() ? h("button", { class: "btn btn-sm", type: "button", id: "btn-diff-draft",
        onclick: showDraftDiff }, `Unsaved changes (since v${state.version})`) : null);
  }

  async function showDiff(a, b) {
    try {
      const [res, oldV, newV] = await Promise.all([
        request("GET", `/api/workflows/${encodeURIComponent(state.id)}/versions/diff/?from=${a}&to=${b}`),
        api.version(state.id, a), api.version(state.id, b)]);
      await diffModal(`v${a} → v${b}`, await changeList(res.changes, res.truncated), await lineDiff(oldV.definition, newV.definition));
    } catch (err) {
      toast(`Diff failed: ${err.message}`, "error");
    }
  }

  async function showDraftDiff() {
    try {
      await diffModal(`v${state.version} → unsaved draft`, null, await lineDiff(JSON.parse(state.saved), state.def));
    } catch (err) {
      toast(`Diff failed: ${err.message}`, "error");
    }
  }

  function diffModal(title, changes, lines) {
    return modal({ title, className: "modal-wide diff-modal", body: h("div", { class: "diff-view" }, changes, lines),
      buttons: [{ label: "Close", value: "cancel" }] });
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

  return { showDiff };
}
