// Running the workflow from the editor: "Run" asks for the trigger's payload (the trigger's sample
// to start with), saves first, starts a run and follows it live, colouring the canvas's nodes by
// status, with a link to the run's page until it is cleared. "Use pinned data" (when steps have
// pins) makes pinned steps take their pinned output instead of running (engine/pinned.py). Nodes
// with pins get a badge on the canvas.
import { api, request } from "./api.js";
import { LiveRun } from "./live-run.js";
import { label } from "./run-status.js";
import { h, modal, toast } from "./ui.js";

const said = (status) => label(status).toLowerCase();  // "Run 4 · timed out"

export function runs(ed) {
  const { state, types, canvas, $ } = ed;
  let liveRun = null;
  const PINNABLE = new Set(["action.python", "action.http", "action.compose", "control.foreach"]);
  const pinnedIds = () => Object.keys(ed.stepTools.pins || {}).filter((id) => {
    const n = state.def.nodes.find((x) => x.id === id);
    return n && PINNABLE.has(n.type) && !n.parent;
  });
  const showPins = () => canvas.setPins(Object.keys(ed.stepTools.pins || {}));
  ed.stepTools.listeners.add(showPins);   // after every refresh of pins (and every edit)

  async function runWorkflow() {
    const trigger = state.def.nodes.find((n) => types.get(n.type)?.category === "trigger");
    const sample = trigger?.parameters?.sample_payload;
    const ta = h("textarea", { id: "run-payload", class: "mono", rows: 8, spellcheck: "false", "aria-label": "Payload" });
    ta.value = JSON.stringify(sample ?? {}, null, 2);
    const err = h("div", { class: "field-error" });
    const pinned = pinnedIds();
    const usePins = h("input", { type: "checkbox", id: "run-use-pinned" });
    const pinsRow = pinned.length ? h("label", { class: "check run-use-pinned" }, usePins,
      ` Use pinned data: ${pinned.map((id) => `“${state.def.nodes.find((n) => n.id === id)?.name || id}”`).join(", ")} ` +
      `${pinned.length > 1 ? "take their" : "takes its"} pinned output instead of running`) : null;
    let payload = {};
    const choice = await modal({
      title: "Run workflow",
      body: h("div", { class: "run-dialog" },
        h("p", { class: "muted small" }, "The trigger's body, as JSON (steps read it as ", h("code", {}, "{{ trigger.body }}"), ").",
          ed.isDirty() ? " Your changes are saved first." : ""),
        ta, err, pinsRow),
      buttons: [{ label: "Cancel", value: "cancel" }, { label: "Run", value: "run", kind: "primary" }],
      onSubmit: (value) => {
        if (value !== "run") return true;
        try {
          payload = ta.value.trim() ? JSON.parse(ta.value) : {};
        } catch (e) {
          err.textContent = `Invalid JSON: ${e.message}`;
          return false;
        }
        return true;
      },
    });
    if (choice !== "run") return;
    if (!(await ed.ensureSaved())) { toast("Not run: the workflow could not be saved", "error"); return; }
    $("#btn-run").disabled = true;
    try {
      followRun(usePins.checked
        ? await request("POST", `/api/workflows/${encodeURIComponent(state.id)}/runs/`, { payload, use_pinned: true })
        : await api.startRun(state.id, payload));
    } catch (e) {
      toast(`The run did not start: ${e.message}`, "error");
    } finally {
      $("#btn-run").disabled = false;
    }
  }

  function followRun(run) {
    if (liveRun) liveRun.close();
    liveRun = new LiveRun(run);
    const link = $("#run-link");
    $("#run-indicator").hidden = false;
    const show = ({ statuses, run: r }) => {
      canvas.setStatuses(statuses);
      link.href = liveRun.page;
      link.dataset.status = r.status;
      link.textContent = `Run ${r.id} · ${said(r.status)}`;
    };
    liveRun.addEventListener("statuses", (e) => show(e.detail));
    liveRun.addEventListener("finished", (e) => {
      const ok = e.detail.status === "succeeded";
      toast(`Run ${run.id} ${said(e.detail.status)}`, ok ? "success" : "error", { timeout: 2500 });
      ed.stepTools.refresh();
      document.dispatchEvent(new CustomEvent("stepwell:run-finished", { detail: { run: run.id, status: e.detail.status } }));
    });
    show({ statuses: liveRun.statuses, run: { id: run.id, status: run.status } });
  }

  $("#btn-run").addEventListener("click", runWorkflow);
  $("#run-clear").addEventListener("click", () => {
    if (liveRun) liveRun.close();
    liveRun = null;
    canvas.setStatuses(null);
    $("#run-indicator").hidden = true;
  });

  return {};
}
