// Saving: the definition becomes a new version (problems the server finds are listed and nothing
// is saved; saving what the newest version already holds makes none: "No changes"); runs save
// first; step tests run the draft as it is, unsaved; a syntax error in a code step blocks a run
// or a step test, not a save (editor-syntax.js); the workflow's name in the header is renamed in
// place; leaving the page with unsaved changes asks first.
import { api, ApiError } from "./api.js";
import { syntaxCheck } from "./editor-syntax.js";
import { toast } from "./ui.js";

export function saving(ed) {
  const { state, $ } = ed;
  const syntax = syntaxCheck(ed);
  // "Test step" runs the editor's draft: it asks the syntax check first, then sends the draft
  ed.stepTools.checkSyntax = (nodeId) => syntax.syntaxBlocked("test", nodeId);

  async function save() {
    if (state.saving) return;
    state.saving = true;
    ed.updateStatus();
    $("#btn-save").classList.add("busy");
    const sent = JSON.stringify(state.def);
    try {
      const res = await api.updateWorkflow(state.id, { definition: JSON.parse(sent) });
      state.version = res.version;
      state.saved = sent;
      if (res.unchanged) {
        toast(`No changes: version ${res.version} already holds this workflow`, "info", { timeout: 2500 });
      } else {
        toast(`Saved as version ${res.version}`, "success");
      }
      ed.showProblems([]);
      ed.stepTools.refresh();  // pins go stale against the saved version
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && err.errors.length) {
        ed.showProblems(err.errors);
        ed.openProblems();
        toast(`Not saved: ${err.errors.length} problem${err.errors.length === 1 ? "" : "s"} in the workflow`, "error",
          { details: err.errors.slice(0, 3).map((e) => e.message) });
      } else if (err instanceof ApiError && err.errors.length) {   // e.g. 413: the server's message
        ed.showProblems(ed.withLocalProblems(err.errors));
        ed.openProblems();
        toast(`Not saved: ${err.message}`, "error");
      } else {
        toast(`Save failed: ${err.message}`, "error");
      }
    } finally {
      state.saving = false;
      $("#btn-save").classList.remove("busy");
      ed.updateStatus();
    }
  }

  // Runs and step tests use the saved version: save first when there are changes.
  async function ensureSaved() {
    if (!ed.isDirty()) return true;
    await save();
    return !ed.isDirty();
  }

  $("#btn-save").addEventListener("click", save);
  document.addEventListener("stepwell:save", save);

  window.addEventListener("beforeunload", (e) => {
    if (!ed.isDirty()) return;
    e.preventDefault();
    e.returnValue = "";
  });

  const nameInput = $("#wf-name");
  nameInput.value = state.name;
  const sizeName = () => { nameInput.size = Math.max(8, Math.min(48, nameInput.value.length + 2)); };
  sizeName();
  nameInput.addEventListener("input", sizeName);
  async function rename() {
    const name = nameInput.value.trim();
    if (!name || name === state.name) { nameInput.value = state.name; return; }
    try {
      const res = await api.updateWorkflow(state.id, { name });
      state.name = res.name;
      toast("Workflow renamed", "success", { timeout: 1800 });
    } catch (err) {
      nameInput.value = state.name;
      toast(`Rename failed: ${err.message}`, "error");
    }
    ed.updateStatus();
  }
  nameInput.addEventListener("change", rename);
  nameInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); nameInput.blur(); }
    if (e.key === "Escape") { nameInput.value = state.name; nameInput.blur(); }
  });

  return { save, ensureSaved, ...syntax };
}
