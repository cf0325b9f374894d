// Workflow list page: table (with each workflow's trigger kind and newest run), create, rename,
// delete, import, export and a link to the runs. Long names are cut with an ellipsis and a tooltip.

import { api, ApiError } from "./api.js";
import { hydrateIcons, setIcon } from "./icons.js";
import { confirmDialog, errorList, h, modal, relativeTime, toast } from "./ui.js";

const root = document.getElementById("workflow-list");
const editUrl = (id) => `/workflows/${id}/edit`;
let workflows = [];

async function load(flashId = null) {
  try {
    const res = await api.listWorkflows();
    workflows = res.results || res;
    render(flashId);
  } catch (err) {
    root.replaceChildren(h("div", { class: "empty-state" },
      h("div", { class: "empty-icon" }, "⚠"), h("h2", {}, "Could not load workflows"),
      h("p", { class: "muted" }, err.message),
      h("button", { class: "btn", type: "button", onclick: () => load() }, "Try again")));
  }
}

const search = document.getElementById("wf-search");
search.addEventListener("input", () => render());

function render(flashId) {
  search.hidden = workflows.length < 2;
  if (!workflows.length) {
    root.replaceChildren(h("div", { class: "empty-state", id: "empty-state" },
      h("div", { class: "empty-icon" }, "◆"),
      h("h2", {}, "No workflows yet"),
      h("p", { class: "muted" }, "Create your first workflow, or import one exported from another Stepwell."),
      h("div", { class: "actions" },
        h("button", { class: "btn", type: "button", onclick: pickImport }, setIcon(h("span"), "upload"), "Import"),
        h("button", { class: "btn btn-primary", type: "button", onclick: create }, setIcon(h("span"), "plus"), "New workflow"))));
    return;
  }
  const q = search.hidden ? "" : search.value.trim().toLowerCase();
  const shown = q ? workflows.filter((w) => `${w.name} ${w.description}`.toLowerCase().includes(q)) : workflows;
  const rows = shown.map((w) => h("tr", { "data-id": w.id, class: w.id === flashId ? "flash" : "" },
    h("td", { class: "name-cell" },
      h("a", { class: "wf-name", href: editUrl(w.id), title: w.name }, w.name),
      w.description ? h("div", { class: "wf-desc", title: w.description }, w.description) : null),
    h("td", { class: "wf-trigger" }, w.trigger
      ? h("span", { class: "tag", "data-trigger": w.trigger }, TRIGGER_LABEL[w.trigger] || w.trigger) : h("span", { class: "muted" }, "—")),
    h("td", { class: "wf-last-run" }, w.last_run
      ? h("a", { href: `/runs/${w.last_run.id}/`, class: "badge status-badge", "data-status": w.last_run.status,
          title: `Run #${w.last_run.id}: ${w.last_run.status}` }, w.last_run.status)
      : h("span", { class: "muted" }, "never")),
    h("td", {}, w.version ? h("span", { class: "badge" }, `v${w.version}`) : "—"),
    h("td", { class: "num" }, String(w.node_count)),
    h("td", { class: "muted", title: new Date(w.updated).toLocaleString() }, relativeTime(w.updated)),
    h("td", { class: "row-actions" },
      h("a", { class: "icon-btn", href: editUrl(w.id), title: "Open in the editor" }, "Open"),
      h("a", { class: "icon-btn", "data-action": "runs", href: `/workflows/${w.id}/runs`, title: "Run history" }, "Runs"),
      h("button", { class: "icon-btn", type: "button", "data-action": "rename", title: "Rename", onclick: () => rename(w) }, "Rename"),
      h("a", { class: "icon-btn", "data-action": "export", href: api.exportUrl(w.id), download: `${slug(w.name)}.json`, title: "Download as JSON" }, "Export"),
      h("button", { class: "icon-btn danger", type: "button", "data-action": "delete", title: "Delete", onclick: () => remove(w) }, "Delete"))));
  root.replaceChildren(h("table", { class: "wf-table" },
    h("thead", {}, h("tr", {}, ["Name", "Trigger", "Last run", "Version", "Nodes", "Updated", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.length ? rows
      : h("tr", {}, h("td", { colspan: 7, class: "muted no-match" }, `No workflow matches “${q}”.`)))));
}

const TRIGGER_LABEL = { manual: "Manual", http: "HTTP", schedule: "Schedule" };

function slug(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "workflow";
}

function nameForm(w = {}) {
  const name = h("input", { type: "text", name: "name", id: "wf-dialog-name", required: true, maxlength: 200, value: w.name || "", placeholder: "e.g. Enrich new leads" });
  const desc = h("textarea", { name: "description", id: "wf-dialog-desc", rows: 3, placeholder: "What does it do? (optional)" });
  desc.value = w.description || "";
  const err = h("div", { class: "field-error" });
  const body = h("div", { class: "modal-body" },
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Name"), name),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Description"), desc), err);
  return { body, name, desc, err };
}

async function create() {
  const f = nameForm();
  await modal({
    title: "New workflow", body: f.body,
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "Create and open", value: "ok", kind: "primary" }],
    onSubmit: async () => {
      try {
        const w = await api.createWorkflow({ name: f.name.value.trim(), description: f.desc.value.trim() });
        location.href = editUrl(w.id);
      } catch (err) {
        f.err.textContent = err.message;
        return false;
      }
    },
  });
}

async function rename(w) {
  const f = nameForm(w);
  await modal({
    title: "Rename workflow", body: f.body,
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "Save", value: "ok", kind: "primary" }],
    onSubmit: async () => {
      try {
        await api.updateWorkflow(w.id, { name: f.name.value.trim(), description: f.desc.value.trim() });
      } catch (err) {
        f.err.textContent = err.message;
        return false;
      }
      toast("Workflow renamed", "success");
      load(w.id);
    },
  });
}

async function remove(w) {
  const ok = await confirmDialog(`Delete “${w.name}”?`,
    "The workflow and all of its versions are deleted. This cannot be undone.", { confirmLabel: "Delete", danger: true });
  if (!ok) return;
  try {
    await api.deleteWorkflow(w.id);
    toast(`Deleted “${w.name}”`, "success");
    load();
  } catch (err) {
    toast(`Delete failed: ${err.message}`, "error");
  }
}

const fileInput = document.getElementById("import-file");
function pickImport() {
  fileInput.value = "";
  fileInput.click();
}

async function importFile(file) {
  let doc;
  try {
    doc = JSON.parse(await file.text());
  } catch (err) {
    return showImportErrors(file.name, "The file is not valid JSON.", [{ path: "$", message: err.message }]);
  }
  try {
    const w = await api.importWorkflow(doc);
    toast(`Imported “${w.name}”`, "success");
    load(w.id);
  } catch (err) {
    if (err instanceof ApiError && err.errors.length) {
      return showImportErrors(file.name, err.detail, err.errors);
    }
    toast(`Import failed: ${err.message}`, "error");
  }
}

function showImportErrors(filename, detail, errors) {
  return modal({
    title: "Import failed", className: "import-errors",
    body: h("div", { class: "modal-body" },
      h("p", {}, h("strong", {}, filename), " could not be imported: ", detail),
      errorList(errors)),
    buttons: [{ label: "Close", value: "ok", kind: "primary" }],
  });
}

fileInput.addEventListener("change", () => { if (fileInput.files[0]) importFile(fileInput.files[0]); });
document.getElementById("btn-import").addEventListener("click", pickImport);
document.getElementById("btn-create").addEventListener("click", create);
hydrateIcons();
window.stepwellList = { reload: load };
load();
