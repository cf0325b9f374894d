// The node panel's "Latest run" section: the selected node's input, output, stdout/stderr and
// error in the newest runs (GET .../nodes/<id>/runs/), with a selector over recent runs and a
// "stale" marker saying what changed since that run. Refetched when a run started here finishes
// (the "stepwell:run-finished" event) and when another node is selected.

import { request } from "./api.js";
import { jsonTree } from "./json-tree.js";
import { label } from "./run-status.js";
import { staleReasons } from "./stale.js";
import { h } from "./ui.js";

const url = (wf, node) => `/api/workflows/${encodeURIComponent(wf)}/nodes/${encodeURIComponent(node)}/runs/?limit=10`;

function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function nodeDataSection(node, { workflowId, getDefinition, watch }) {
  const nodeId = node.id;
  const select = h("select", { id: "node-run-select", "aria-label": "Run", class: "node-run-select" });
  const body = h("div", { class: "node-run-body", id: "node-run-data" }, h("p", { class: "muted small" }, "Loading…"));
  const section = h("section", { class: "props-section node-data", id: "node-data" },
    h("h4", {}, "Latest run"), h("div", { class: "node-run-head" }, select), body);
  let runs = [];
  let current = null;
  const staleBox = h("div", { class: "stale-note node-run-stale" });
  const updateStale = () => {
    const reasons = current ? staleReasons(current.nodes, getDefinition(), nodeId) : [];
    staleBox.hidden = !reasons.length;
    staleBox.title = reasons.join("\n");
    staleBox.replaceChildren(...(reasons.length ? [h("span", { class: "stale-marker" }, "stale"),
      ` Changed since this run: ${reasons.join("; ")}.`] : []));
  };

  const block = (title, content, open, cls) => h("details", { class: `test-block ${cls}`, open }, h("summary", {}, title), content);

  const show = () => {
    const entry = runs.find((r) => String(r.run.id) === select.value) || runs[0];
    if (!entry) {
      select.hidden = true;
      current = null;
      body.replaceChildren(h("p", { class: "muted small node-run-empty" }, "No run has reached this step yet. Run the workflow to see its data here."));
      return;
    }
    select.hidden = false;
    current = entry;
    updateStale();
    const steps = entry.steps;
    const last = steps[steps.length - 1];
    const perItem = steps.some((s) => s.item_index !== null && s.item_index !== undefined);
    const pinned = last?.sandbox?.pinned;
    const stepView = (s) => [
      s.error ? h("div", { class: "alert alert-error node-run-error" }, s.error) : null,
      block("Input", h("div", { class: "node-run-input" }, jsonTree(s.inputs ?? null, { openDepth: 2 })), false, "node-run-input-block"),
      block("Output", h("div", { class: "node-run-output" }, jsonTree(s.output ?? null, { openDepth: 2 })), s.status === "succeeded", "node-run-output-block"),
      block(`stdout${s.stdout ? "" : " (empty)"}`, h("pre", { class: "test-log node-run-stdout" }, s.stdout || ""), !!s.stdout, ""),
      block(`stderr${s.stderr ? "" : " (empty)"}`, h("pre", { class: "test-log node-run-stderr" }, s.stderr || ""), !!s.stderr, ""),
    ];
    body.replaceChildren(
      h("div", { class: "test-status" },
        h("span", { class: "status-badge node-run-status", "data-status": last?.status || entry.run.status }, label(last?.status || entry.run.status)),
        pinned ? h("span", { class: "tag", title: "This run used the step's pinned output instead of running it" }, "pinned data") : null,
        last?.duration_ms != null ? h("span", { class: "muted small" }, ` ${Math.round(last.duration_ms)} ms`) : null,
        h("a", { class: "small", href: entry.run.page, target: "_blank", rel: "noopener" }, ` run ${entry.run.id} ↗`)),
      staleBox,
      ...(perItem
        ? steps.map((s) => h("details", { class: "test-block node-run-item", open: s === last },
          h("summary", {}, `Item ${s.item_index}${s.attempt > 1 ? ` · attempt ${s.attempt}` : ""} · ${label(s.status)}`), ...stepView(s).filter(Boolean)))
        : (last ? stepView(last) : [])).filter(Boolean));
  };

  const load = async (newest = false) => {
    try {
      const data = await request("GET", url(workflowId, nodeId));
      runs = data.runs || [];
    } catch (e) {
      body.replaceChildren(h("div", { class: "alert alert-error" }, `Run data unavailable: ${e.message}`));
      return;
    }
    const keep = newest ? "" : select.value;   // a run that just finished is shown at once
    select.replaceChildren(...runs.map((r, i) => h("option", { value: String(r.run.id) },
      `${i === 0 ? "Newest: " : ""}run ${r.run.id} · ${label(r.run.status).toLowerCase()} · v${r.run.version} · ${ago(r.run.created)}`)));
    if (runs.some((r) => String(r.run.id) === keep)) select.value = keep;
    show();
  };
  select.addEventListener("change", show);
  const onFinished = () => { if (section.isConnected) load(true); else document.removeEventListener("stepwell:run-finished", onFinished); };
  document.addEventListener("stepwell:run-finished", onFinished);
  watch(section, updateStale);   // the definition changed: stale markers
  load();
  return section;
}
