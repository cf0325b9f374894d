// Run detail page: renders /api/runs/<id>/ and refreshes it when ws/runs/<id>/ reports a change.
const boot = JSON.parse(document.getElementById("run-boot").textContent);
const $ = (id) => document.getElementById(id);
const open = new Set();
let refreshTimer = null;

function csrf() {
  const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function api(path, method = "GET") {
  const res = await fetch(path, { method, credentials: "same-origin",
    headers: { "X-CSRFToken": csrf(), "Content-Type": "application/json" }, body: method === "POST" ? "{}" : undefined });
  return { status: res.status, body: await res.json().catch(() => null) };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k === "class" ? (e.className = v) : e.setAttribute(k, v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

const json = (v) => JSON.stringify(v, null, 2);

function stepDetail(s) {
  const box = el("div", { class: "step-detail" });
  if (s.error) box.append(el("h4", {}, "Error"), el("p", { class: "error" }, s.error));
  box.append(el("h4", {}, "Inputs (after mapping)"), el("pre", {}, json(s.inputs)));
  box.append(el("h4", {}, "Output"), el("pre", {}, json(s.output)));
  if (s.stdout) box.append(el("h4", {}, "stdout"), el("pre", {}, s.stdout));
  if (s.stderr) box.append(el("h4", {}, "stderr"), el("pre", {}, s.stderr));
  if (s.files && s.files.length) {
    const ul = el("ul");
    for (const f of s.files) ul.append(el("li", {}, el("a", { href: f.url }, f.name), ` (${f.size} bytes${f.truncated ? ", not kept" : ""})`));
    box.append(el("h4", {}, "Files"), ul);
  }
  if (s.sandbox && Object.keys(s.sandbox).length) box.append(el("h4", {}, "Sandbox"), el("pre", {}, json(s.sandbox)));
  return box;
}

function render(run) {
  const badge = $("run-status");
  badge.textContent = run.status;
  badge.className = `badge ${run.status}`;
  const dur = run.duration_ms != null ? ` · ${run.duration_ms.toFixed(0)} ms` : "";
  $("run-meta").textContent = `${run.trigger} run started by ${run.started_by || run.trigger} · created ${new Date(run.created).toLocaleString()}${dur}` +
    (run.rerun_of ? ` · rerun of ${run.rerun_of}` : "");
  $("run-error").textContent = run.error || "";
  $("payload").textContent = json(run.payload);
  const finished = !["queued", "running"].includes(run.status);
  $("btn-cancel").disabled = finished;
  const tbody = $("steps");
  tbody.replaceChildren();
  for (const s of run.steps) {
    const row = el("tr", { class: "step" },
      el("td", {}, s.node_id), el("td", { class: "muted" }, s.node_type),
      el("td", {}, s.item_index ?? ""), el("td", {}, String(s.attempt)),
      el("td", {}, el("span", { class: `badge ${s.status}` }, s.status)),
      el("td", {}, s.duration_ms != null ? `${s.duration_ms.toFixed(0)} ms` : ""));
    row.addEventListener("click", () => { open.has(s.id) ? open.delete(s.id) : open.add(s.id); render(run); });
    tbody.append(row);
    if (open.has(s.id)) tbody.append(el("tr", {}, Object.assign(el("td"), { colSpan: 6 })));
    if (open.has(s.id)) tbody.lastChild.firstChild.append(stepDetail(s));
  }
}

async function refresh() {
  const { status, body } = await api(`/api/runs/${boot.id}/`);
  if (status === 200) render(body);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 100);
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/runs/${boot.id}/`);
  ws.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); };
  ws.onmessage = scheduleRefresh;
  ws.onclose = () => { $("live").textContent = "reconnecting…"; $("live").classList.remove("on"); setTimeout(connect, 2000); };
}

$("btn-cancel").addEventListener("click", async () => { await api(`/api/runs/${boot.id}/cancel/`, "POST"); refresh(); });
$("btn-rerun").addEventListener("click", async () => {
  const { status, body } = await api(`/api/runs/${boot.id}/rerun/`, "POST");
  if (status === 201) location.href = `/runs/${body.id}/`;
});
refresh();
connect();
