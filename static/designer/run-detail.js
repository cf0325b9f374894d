// Run page: the pinned version's graph coloured by step status (live over ws/runs/<id>/), the step
// list, and per step its inputs, output tree, logs, files, schema and sandbox metadata.
import { h, toast, relativeTime, confirmDialog } from "./ui.js";
import { request } from "./api.js";
import { jsonTree } from "./json-tree.js";
import { RunGraph } from "./run-graph.js";
import { setIcon } from "./icons.js";
import { Follower } from "./follow.js";
import { LABEL, formatMs as fmtMs, isActive, label, nodeSummary as summarize } from "./run-status.js";
import { conversation } from "./agent-conversation.js";

const boot = JSON.parse(document.getElementById("run-boot").textContent);
const $ = (id) => document.getElementById(id);
const IMAGE = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", svg: "image/svg+xml", webp: "image/webp" };

const nodesById = new Map((boot.definition.nodes || []).map((n) => [n.id, n]));
const state = { run: null, selectedNode: null, selectedStep: null, schemas: null, panelKey: "", payloadKey: "",
  live: new Map() }; // step id -> {stdout, stderr} streamed while it runs (step.output events)
const imageUrls = new Map(); // file url -> object URL (the API sends files as attachments)

const badge = (status) => h("span", { class: `badge ${status}`, "data-status": status }, label(status));
const nodeName = (id) => nodesById.get(id)?.name || id;
const typeLabel = (type) => boot.nodeTypes[type]?.label || type;

function stepsOf(nodeId) {
  return (state.run?.steps || []).filter((s) => s.node_id === nodeId);
}

const nodeSummary = (nodeId) => summarize(stepsOf(nodeId));

// ---- header -----------------------------------------------------------------------------------
function renderHead(run) {
  const b = $("run-status");
  b.textContent = label(run.status);
  b.className = `badge ${run.status}`;
  b.dataset.status = run.status;
  const meta = $("run-meta");
  const by = run.started_by ? `by ${run.started_by}` : "";
  meta.replaceChildren(...[
    h("span", { class: "tag" }, run.trigger), " ",
    `${run.trigger === "rerun" ? "Rerun" : "Started"} ${by} · `,
    h("time", { datetime: run.created, title: new Date(run.created).toLocaleString() }, relativeTime(run.created)),
    ` · version ${run.version}`,
    run.duration_ms != null ? ` · took ${fmtMs(run.duration_ms)}` : (isActive(run.status) ? " · in progress " : ""),
    run.duration_ms == null && run.status === "running" && run.started ? ticker(run.started) : null,
    run.rerun_of ? h("span", {}, " · rerun of ", h("a", { href: `/runs/${run.rerun_of}/` }, `run ${run.rerun_of}`),
      run.rerun_from ? h("span", { class: "rerun-from" }, ` from ${nodeName(run.rerun_from.node)}` +
        (run.rerun_from.item_index != null ? ` (item ${run.rerun_from.item_index})` : "")) : null) : null,
  ].filter((x) => x !== null && x !== ""));
  const err = $("run-error");
  err.hidden = !run.error;
  err.className = "alert alert-error run-alert";
  err.textContent = run.error || "";
  $("btn-cancel").hidden = !isActive(run.status);
  const payloadKey = JSON.stringify(run.payload);
  if (payloadKey !== state.payloadKey) {
    state.payloadKey = payloadKey;
    $("payload").replaceChildren(jsonTree(run.payload, { openDepth: 3 }));
  }
}

// ---- graph ------------------------------------------------------------------------------------
const graph = new RunGraph($("graph"), boot.definition, boot.nodeTypes, { onSelect: (id) => selectNode(id) });
$("legend").replaceChildren(...["pending", "queued", "running", "succeeded", "failed", "skipped"].map((s) =>
  h("span", { class: "legend-item" }, h("i", { class: "legend-dot", "data-status": s }), LABEL[s])));

function renderGraph() {
  for (const id of nodesById.keys()) {
    const s = nodeSummary(id);
    graph.setStatus(id, s.status, s.label, s.meta);
  }
}

// ---- steps table ------------------------------------------------------------------------------
function renderSteps(run) {
  const tbody = $("steps");
  $("steps-count").textContent = `${run.steps.length} step run${run.steps.length === 1 ? "" : "s"}`;
  if (!run.steps.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted empty-row" },
      isActive(run.status) ? "Waiting for the first step…" : "No step ran.")));
    return;
  }
  tbody.replaceChildren(...run.steps.map((s) => h("tr", {
    class: `step-row${state.selectedStep === s.id ? " selected" : ""}`, "data-step": s.id, "data-node": s.node_id, tabindex: 0,
    onclick: () => selectStep(s), onkeydown: (e) => { if (e.key === "Enter") selectStep(s); },
  },
    h("td", {}, h("div", { class: "step-name" }, nodeName(s.node_id)), h("div", { class: "muted small" }, typeLabel(s.node_type))),
    h("td", {}, badge(s.status), s.reused_from ? reusedTag(s) : null),
    h("td", { class: "num", title: "attempt" + (s.item_index != null ? " · For each item" : "") },
      s.item_index != null ? h("span", { class: "muted small" }, `item ${s.item_index} · `) : null, `#${s.attempt}`),
    h("td", { class: "num" }, s.status === "running" && s.started ? ticker(s.started) : fmtMs(s.duration_ms) || "—"))));
}

// elapsed time of something still running, counted up once a second
function ticker(since) {
  const el = h("span", { class: "ticker", "data-since": since }, fmtElapsed(since));
  return el;
}
const fmtElapsed = (since) => `${fmtMs(Math.max(0, Date.now() - new Date(since).getTime()))}…`;
setInterval(() => {
  for (const el of document.querySelectorAll(".ticker[data-since]")) el.textContent = fmtElapsed(el.dataset.since);
}, 1000);

// ---- step panel -------------------------------------------------------------------------------
function section(title, body, { open = true, cls = "" } = {}) {
  return h("details", { class: `panel-sec ${cls}`, open }, h("summary", {}, title), h("div", { class: "panel-body" }, body));
}

function pre(text, cls = "") {
  return h("pre", { class: `log ${cls}` }, text);
}

async function imageUrl(f) {
  if (imageUrls.has(f.url)) return imageUrls.get(f.url);
  const res = await fetch(f.url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${res.status}`);
  const ext = f.name.split(".").pop().toLowerCase();
  const url = URL.createObjectURL(new Blob([await res.blob()], { type: IMAGE[ext] }));
  imageUrls.set(f.url, url);
  return url;
}

function fileItem(f) {
  const ext = f.name.includes(".") ? f.name.split(".").pop().toLowerCase() : "";
  const size = f.size < 1024 ? `${f.size} B` : f.size < 1048576 ? `${(f.size / 1024).toFixed(1)} KB` : `${(f.size / 1048576).toFixed(1)} MB`;
  const link = f.truncated ? h("span", { class: "muted" }, f.name)
    : h("a", { href: f.url, download: f.name, class: "file-link" }, f.name);
  const item = h("li", { class: "file" }, h("div", { class: "file-head" }, h("span", { class: "file-ext" }, ext || "file"), link,
    h("span", { class: "muted small" }, f.truncated ? `${size} · over the size cap, not kept` : size)));
  if (IMAGE[ext] && !f.truncated) {
    const img = h("img", { class: "file-image", alt: f.name, "data-file": f.name });
    item.append(h("a", { href: f.url, download: f.name, class: "file-preview" }, img));
    imageUrl(f).then((u) => { img.src = u; }).catch(() => img.replaceWith(h("span", { class: "muted small" }, "preview unavailable")));
  }
  return item;
}

function sandboxInfo(sb) {
  const known = [["driver", "Driver"], ["domain", "Domain"], ["image_id", "Image id"], ["runtime_id", "Runtime id"],
    ["accel", "Acceleration"], ["start", "Started by"], ["execution_id", "Execution id"],
    ["exit_code", "Exit code"], ["duration_ms", "Sandbox time"], ["timeout_s", "Time limit"], ["memory_mib", "Memory limit"]];
  const dl = h("dl", { class: "kv" });
  const shown = new Set();
  for (const [k, label] of known) {
    if (!(k in sb)) continue;
    shown.add(k);
    let v = sb[k];
    if (k === "duration_ms") v = fmtMs(v);
    if (k === "timeout_s") v = `${v} s`;
    if (k === "memory_mib") v = `${v} MiB`;
    dl.append(h("dt", {}, label), h("dd", { class: "mono", "data-key": k }, v == null || v === "" ? "—" : String(v)));
  }
  const rest = Object.fromEntries(Object.entries(sb).filter(([k]) => !shown.has(k) && k !== "egress"));
  return h("div", {}, dl, Object.keys(rest).length ? section("More", jsonTree(rest, { openDepth: 1 }), { open: false, cls: "nested" }) : null);
}

// One row per outbound connection the step's code attempted through the egress proxy.
function egressTable(rows) {
  const head = ["Host", "Port", "Method", "Allowed", "Reason", "Sent", "Received", "Duration"];
  return h("table", { class: "table egress" },
    h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", { class: r.allowed ? "egress-allowed" : "egress-refused" },
      h("td", { class: "mono" }, String(r.host ?? "")), h("td", { class: "mono" }, String(r.port ?? "")),
      h("td", {}, String(r.method ?? "")), h("td", {}, r.allowed ? "allowed" : "refused"),
      h("td", { class: "small" }, String(r.reason || "")),
      h("td", { class: "mono" }, `${r.bytes_out ?? 0} B`), h("td", { class: "mono" }, `${r.bytes_in ?? 0} B`),
      h("td", { class: "mono" }, fmtMs(r.duration_ms) || "—")))));
}

function renderPanel() {
  const panel = $("step-panel");
  const nodeId = state.selectedNode;
  if (!nodeId || !state.run) { panel.hidden = true; return; }
  const steps = stepsOf(nodeId).sort((a, b) => (a.item_index ?? -1) - (b.item_index ?? -1) || a.attempt - b.attempt || a.id - b.id);
  let step = steps.find((s) => s.id === state.selectedStep);
  // by default the step that explains the node: a failure first, else the latest
  if (!step && steps.length) step = steps.find((s) => ["failed", "timed_out"].includes(s.status)) || steps.reduce((a, b) => (b.id > a.id ? b : a));
  const liveKey = step ? [state.live.get(step.id)?.stdout.length ?? 0, state.live.get(step.id)?.stderr.length ?? 0] : null;
  const key = JSON.stringify([nodeId, step || null, state.schemas?.[nodeId] ?? null, steps.map((s) => [s.id, s.status]), liveKey, state.run.status]);
  if (key === state.panelKey) return;
  state.panelKey = key;
  panel.hidden = false;
  const node = nodesById.get(nodeId);
  const t = boot.nodeTypes[node?.type] || {};
  const icon = h("span", { class: `rg-icon cat-${t.category || "unknown"}` });
  setIcon(icon, node?.type, t.icon || "•");
  const head = h("div", { class: "panel-head" },
    icon,
    h("div", {}, h("h2", {}, node?.name || nodeId), h("div", { class: "muted small" }, `${t.label || node?.type} · `, h("code", {}, nodeId))),
    h("span", { class: "spacer" }),
    step ? badge(step.status) : badge("pending"),
    h("button", { class: "icon-btn panel-close", type: "button", title: "Close", "aria-label": "Close", onclick: () => selectNode(null) }, "×"));
  const body = [head];
  if (steps.length > 1) {
    body.push(h("div", { class: "step-tabs", role: "tablist" }, steps.map((s) => h("button", {
      type: "button", role: "tab", class: `step-tab${s.id === step.id ? " active" : ""}`, "aria-selected": String(s.id === step.id),
      onclick: () => selectStep(s),
    }, h("i", { class: "legend-dot", "data-status": s.status }),
    s.item_index != null ? `item ${s.item_index}` : "", s.item_index != null && s.attempt > 1 ? " · " : "",
    s.item_index == null || s.attempt > 1 ? `attempt ${s.attempt}` : ""))));
  }
  if (!step) {
    body.push(h("p", { class: "muted" }, isActive(state.run.status) ? "This step has not started yet." : "This step did not run in this run."));
  } else {
    body.push(h("div", { class: "facts" },
      fact("Status", label(step.status)), fact("Duration", fmtMs(step.duration_ms) || "—"),
      fact("Attempt", String(step.attempt)), step.item_index != null ? fact("Item index", String(step.item_index)) : null,
      fact("Started", step.started ? new Date(step.started).toLocaleTimeString() : "—"),
      fact("Finished", step.finished ? new Date(step.finished).toLocaleTimeString() : "—"),
      boot.audit ? fact("Audit", h("a", { href: `/audit/?step=${step.id}`, class: "audit-link" }, "event")) : null,
      step.reused_from ? fact("Reused", h("a", { href: `/runs/${step.reused_from.run}/#node=${encodeURIComponent(step.node_id)}`, class: "reused-link" },
        `from run ${step.reused_from.run}`)) : null));
    if (!isActive(state.run.status)) body.push(rerunControls(step));
    if (step.error) body.push(h("div", { class: "alert alert-error step-error" }, h("strong", {}, "Error "), h("span", { class: "mono" }, step.error)));
    if (step.node_type === "action.agent" && Array.isArray(step.output?.turns)) {   // AI agent: the turns as a conversation
      body.push(section(`Conversation (${step.output.turns.length} turns)`, conversation(step.output, step.files, imageUrl), { cls: "sec-conversation" }));
    }
    const cols = h("div", { class: "panel-cols" });
    cols.append(
      section("Inputs", jsonTree(step.inputs, { openDepth: 2 }), { cls: "sec-inputs" }),
      section("Output", jsonTree(step.output, { openDepth: 3 }), { cls: "sec-output" }));
    body.push(cols);
    const live = step.status === "running" ? state.live.get(step.id) : null;   // streamed so far
    const stdout = step.stdout || live?.stdout || "", stderr = step.stderr || live?.stderr || "";
    body.push(section(live ? "stdout (live)" : "stdout", stdout ? pre(stdout, live ? "log-live" : "")
      : h("p", { class: "muted small" }, step.status === "running" ? "Nothing printed yet." : "Nothing printed."), { open: !!stdout || step.status === "running", cls: "sec-stdout" }));
    if (stderr || step.node_type === "action.python") {
      body.push(section(live ? "stderr (live)" : "stderr", stderr ? pre(stderr, `log-err${live ? " log-live" : ""}`) : h("p", { class: "muted small" }, "Nothing."), { open: !!stderr, cls: "sec-stderr" }));
    }
    if (step.files?.length) body.push(section(`Files (${step.files.length})`, h("ul", { class: "files" }, step.files.map(fileItem)), { cls: "sec-files" }));
    const egress = step.sandbox?.egress;
    if (Array.isArray(egress) && egress.length) body.push(section(`Egress (${egress.length})`, egressTable(egress), { open: true, cls: "sec-egress" }));
    if (step.sandbox && Object.keys(step.sandbox).length) body.push(section("Sandbox", sandboxInfo(step.sandbox), { open: false, cls: "sec-sandbox" }));
  }
  const schema = state.schemas?.[nodeId];
  body.push(section("Inferred output schema", schema ? jsonTree(schema, { openDepth: 2 })
    : h("p", { class: "muted small" }, state.schemas ? "No schema yet: it is inferred from successful outputs." : "Loading…"), { open: false, cls: "sec-schema" }));
  panel.replaceChildren(...body);
}

function reusedTag(s) {
  return h("span", { class: "tag reused-tag", title: `Output reused from run ${s.reused_from.run} (step ${s.reused_from.step}); this step did not run again` }, "reused");
}

// Rerun from this step: the new run reuses the recorded outputs upstream and runs from here on
// (of the latest saved version, or of the version this run used).
function rerunControls(step) {
  const same = h("input", { type: "checkbox", class: "rerun-same-version" });
  const btn = h("button", { type: "button", class: "btn btn-sm btn-rerun-from", "data-node": step.node_id,
    title: "Start a new run that reuses the outputs recorded upstream of this step and runs from it on" }, "Rerun from this step");
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      const body = { from_node: step.node_id, same_version: same.checked };
      if (step.item_index != null) body.item_index = step.item_index;
      const run = await request("POST", `/api/runs/${boot.id}/rerun/`, body);
      location.href = run.page || `/runs/${run.id}/`;
    } catch (err) {
      toast(`Could not rerun from this step: ${err.message}`, "error", { details: (err.errors || []).map((e) => e.message) });
      btn.disabled = false;
    }
  });
  return h("div", { class: "rerun-from-controls" }, btn,
    h("label", { class: "check small" }, same, ` on version ${state.run.version} (this run's)`),
    step.item_index != null ? h("span", { class: "muted small" }, ` · item ${step.item_index} only`) : null);
}

// Live output of a running step: appended to what was streamed before, shown at once when the
// step is the one in the panel.
function onOutput(msg) {
  const cur = state.live.get(msg.step_id) || { stdout: "", stderr: "" };
  cur.stdout += msg.data?.stdout || "";
  cur.stderr += msg.data?.stderr || "";
  state.live.set(msg.step_id, cur);
  const s = state.run?.steps.find((x) => x.id === msg.step_id);
  if (s && state.selectedNode === s.node_id) {
    renderPanel();
    for (const el of document.querySelectorAll("#step-panel .log-live")) el.scrollTop = el.scrollHeight;
  }
}

function fact(label, value) {
  return h("div", { class: "fact" }, h("div", { class: "fact-label" }, label), h("div", { class: "fact-value" }, value));
}

function selectNode(nodeId, stepId = null) {
  state.selectedNode = nodeId;
  state.selectedStep = stepId;
  graph.select(nodeId);
  render();
  if (nodeId) {
    const url = new URL(location.href);
    url.hash = `node=${encodeURIComponent(nodeId)}`;
    history.replaceState(null, "", url);
    $("step-panel").scrollIntoView({ block: "nearest", behavior: "smooth" });
  } else {
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function selectStep(s) {
  selectNode(s.node_id, s.id);
}

function render() {
  if (!state.run) return;
  renderHead(state.run);
  renderGraph();
  renderSteps(state.run);
  renderPanel();
}

// ---- data -------------------------------------------------------------------------------------
let refreshing = null, again = false, lastFinished = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    try {
      state.run = await request("GET", `/api/runs/${boot.id}/`);
      const finished = !isActive(state.run.status);
      if (finished && (!lastFinished || !state.schemas)) loadSchemas();
      lastFinished = finished;
      render();
    } catch (err) {
      toast(`Could not load the run: ${err.message}`, "error");
    } finally {
      refreshing = null;
      if (again) { again = false; refresh(); }
    }
  })();
  return refreshing;
}

async function loadSchemas() {
  try {
    state.schemas = (await request("GET", `/api/workflows/${boot.workflow}/schemas/`)).schemas || {};
    state.panelKey = "";
    renderPanel();
  } catch { /* the schema section says "Loading…"; not worth a toast */ }
}

let timer = null;
function soon(ms = 120) {
  clearTimeout(timer);
  timer = setTimeout(refresh, ms);
}

function onEvent(msg) {
  if (msg.type === "pong") return;
  if (msg.type === "step.output") { onOutput(msg); return; }   // no refresh: the text is in the event
  // colour the node at once; the full step data follows with the refresh
  if (msg.type === "step.status" && state.run) {
    const s = state.run.steps.find((x) => x.id === msg.step_id);
    if (s) s.status = msg.status;
    else state.run.steps.push({ id: msg.step_id, node_id: msg.node_id, node_type: nodesById.get(msg.node_id)?.type,
      item_index: msg.item_index, attempt: msg.attempt, status: msg.status, files: [], inputs: null, output: null });
    renderGraph();
  }
  if (msg.type === "run.status" && state.run) { state.run.status = msg.status; renderHead(state.run); }
  soon();
}

const follower = new Follower(`/ws/runs/${boot.id}/`, {
  onMessage: onEvent,
  poll: () => { if (!state.run || isActive(state.run.status)) refresh(); },
  onOpen: () => { live(true); soon(0); },
  onClose: () => live(false),
});

function live(on) {
  const el = $("live");
  el.classList.toggle("on", on);
  el.title = on ? "Live: updates as the run goes" : "Reconnecting…";
}

// ---- actions ----------------------------------------------------------------------------------
$("btn-cancel").addEventListener("click", async () => {
  if (!(await confirmDialog("Cancel this run?", "Steps that are running are stopped; later steps do not start.", { confirmLabel: "Cancel run", danger: true }))) return;
  try {
    state.run = await request("POST", `/api/runs/${boot.id}/cancel/`);
    toast("Cancellation requested", "info");
    render();
  } catch (err) {
    toast(err.message, "error");
  }
  soon(300);
});

$("btn-rerun").addEventListener("click", async () => {
  const btn = $("btn-rerun");
  btn.disabled = true;
  try {
    const run = await request("POST", `/api/runs/${boot.id}/rerun/`, { same_version: false });
    location.href = run.page || `/runs/${run.id}/`;
  } catch (err) {
    toast(`Could not start the run: ${err.message}`, "error", { details: (err.errors || []).map((e) => e.message) });
    btn.disabled = false;
  }
});

document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.selectedNode && !document.querySelector("dialog[open]")) selectNode(null); });

const fromHash = decodeURIComponent((location.hash.match(/node=([^&]+)/) || [])[1] || "");
refresh().then(() => {
  if (fromHash && nodesById.has(fromHash)) selectNode(fromHash);
  document.body.dataset.ready = "true";
});
follower.start();
