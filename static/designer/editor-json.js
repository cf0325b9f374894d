// The JSON view: the definition as text beside the canvas, kept in step with every edit made
// elsewhere; "Apply" replaces the definition with the text (one undo step), "Revert" refills it.
import { normalize } from "./model.js";
import { toast } from "./ui.js";

export function jsonView(ed) {
  const { state, $ } = ed;
  let open = false;

  function fill() {
    $("#json-text").value = JSON.stringify(state.def, null, 2);
    $("#json-error").textContent = "";
  }

  function toggle(show = !open) {
    open = show;
    $("#json-view").hidden = !show;
    $("#btn-json").classList.toggle("active", show);
    $("#btn-json").setAttribute("aria-pressed", String(show));
    if (show) { fill(); $("#history").hidden = true; }
  }

  $("#btn-json").addEventListener("click", () => toggle());
  $("#json-revert").addEventListener("click", fill);
  $("#json-apply").addEventListener("click", () => {
    let doc;
    try {
      doc = JSON.parse($("#json-text").value);
      if (!doc || typeof doc !== "object" || !Array.isArray(doc.nodes) || !Array.isArray(doc.edges)) {
        throw new Error("a definition is an object with `nodes` and `edges` arrays");
      }
    } catch (err) {
      $("#json-error").textContent = `Cannot apply: ${err.message}`;
      return;
    }
    const ok = ed.commit((d) => { for (const k of Object.keys(d)) delete d[k]; Object.assign(d, normalize(doc)); }, { source: "json" });
    $("#json-error").textContent = "";
    toast(ok ? "JSON applied to the canvas" : "No changes", ok ? "success" : "info", { timeout: 1800 });
  });

  return {
    // the definition changed (source: who changed it): refill the text unless it came from here
    jsonChanged: (source) => { if (open && source !== "json") fill(); },
    closeJson: () => { if (open) toggle(false); },
  };
}
