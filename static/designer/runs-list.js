// Runs of one workflow: status filter chips (?status=), filters by date range, trigger kind and
// version (?since=, ?until=, ?trigger=, ?version=), limit/offset paging, rows of running runs
// refreshed live from ws/workflows/<id>/, and "Run now" with a JSON payload.
import { h, toast, modal, relativeTime, errorList } from "./ui.js";
import { request } from "./api.js";
import { Follower } from "./follow.js";
import { isActive } from "./run-status.js";

const boot = JSON.parse(document.getElementById("runs-boot").textContent);
const wfId = boot.workflow.id;
const $ = (id) => document.getElementById(id);
const LABEL = Object.fromEntries(boot.statuses.map((s) => [s.value, s.label]));
const params = new URLSearchParams(location.search);
const LIMIT = Math.min(100, Math.max(1, parseInt(params.get("limit") || "25", 10) || 25));
const TRIGGERS = [["manual", "Manual"], ["http", "HTTP request"], ["schedule", "Schedule"], ["rerun", "Rerun"]];
// the filters beside status: query parameter → its <input>/<select> in the toolbar
const FILTERS = { since: "filter-since", until: "filter-until", trigger: "filter-trigger", version: "filter-version" };
const state = {
  statuses: new Set((params.get("status") || "").split(",").filter((s) => LABEL[s])),
  filters: Object.fromEntries(Object.keys(FILTERS).map((k) => [k, params.get(k) || ""])),
  offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
  count: 0, runs: [],
};

const fmtMs = (ms) => ms == null ? "—" : ms < 1000 ? `${Math.round(ms)} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s`
  : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
const badge = (status) => h("span", { class: `badge ${status}`, "data-status": status }, LABEL[status] || status);

function syncUrl() {
  const q = new URLSearchParams();
  if (state.statuses.size) q.set("status", [...state.statuses].join(","));
  for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
  if (state.offset) q.set("offset", String(state.offset));
  if (LIMIT !== 25) q.set("limit", String(LIMIT));
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? `?${s}` : ""));
}

function renderChips() {
  const host = $("status-filter");
  const chip = (value, label) => {
    const on = value === "" ? state.statuses.size === 0 : state.statuses.has(value);
    return h("button", { type: "button", class: `chip${on ? " on" : ""}`, "data-status": value || "all", "aria-pressed": String(on),
      onclick: () => {
        if (value === "") state.statuses.clear();
        else if (state.statuses.has(value)) state.statuses.delete(value);
        else state.statuses.add(value);
        state.offset = 0;
        load();
      } }, value ? h("i", { class: "legend-dot", "data-status": value }) : null, label);
  };
  host.replaceChildren(chip("", "All"), ...boot.statuses.map((s) => chip(s.value, s.label)));
}

const filtered = () => state.statuses.size > 0 || Object.values(state.filters).some(Boolean);
function clearFilters() {
  state.statuses.clear();
  for (const k of Object.keys(state.filters)) { state.filters[k] = ""; $(FILTERS[k]).value = ""; }
  state.offset = 0;
  load();
}

// The toolbar's date, trigger and version controls, filled from the URL; a change reloads page 1.
function setupFilters() {
  $("filter-trigger").append(...TRIGGERS.map(([v, label]) => h("option", { value: v }, label)));
  for (const [k, id] of Object.entries(FILTERS)) {
    const el = $(id);
    el.value = state.filters[k];
    el.addEventListener("change", () => {
      if (k === "version" && el.value && !/^\d+$/.test(el.value)) return;
      state.filters[k] = el.value;
      state.offset = 0;
      load();
    });
  }
  $("filter-clear").addEventListener("click", clearFilters);
}

function row(run) {
  const started = run.started || run.created;
  return h("tr", { "data-run": run.id, class: "run-row", onclick: (e) => { if (!e.target.closest("a")) location.href = run.page; } },
    h("td", {}, h("a", { href: run.page, class: "run-link" }, `#${run.id}`)),
    h("td", {}, badge(run.status), run.error ? h("div", { class: "muted small run-err", title: run.error }, run.error) : null),
    h("td", {}, h("span", { class: "tag" }, run.trigger), run.rerun_of ? h("span", { class: "muted small" }, ` of #${run.rerun_of}`) : null),
    h("td", {}, run.started_by || h("span", { class: "muted" }, "—")),
    h("td", { class: "num" }, `v${run.version}`),
    h("td", {}, h("time", { datetime: started, title: new Date(started).toLocaleString() }, relativeTime(started))),
    h("td", { class: "num" }, run.status === "running" && run.started
      ? h("span", { class: "muted ticker", "data-since": run.started }, elapsed(run.started))
      : isActive(run.status) ? h("span", { class: "muted" }, "waiting…") : fmtMs(run.duration_ms)));
}

function render() {
  renderChips();
  const host = $("runs");
  if (!state.runs.length) {
    const any = filtered();
    host.replaceChildren(h("div", { class: "empty-state", id: "empty-state" },
      h("div", { class: "empty-icon" }, "◇"),
      h("h2", {}, any ? "No runs match the filters" : "No runs yet"),
      h("p", { class: "muted" }, any ? "Try other filters, or clear them." : "Start one with “Run now”, from the editor, its HTTP trigger or its schedule."),
      h("div", { class: "actions" }, any
        ? h("button", { class: "btn", type: "button", onclick: clearFilters }, "Clear filters")
        : h("button", { class: "btn btn-primary", type: "button", onclick: runNow }, "▶ Run now"))));
  } else {
    host.replaceChildren(h("table", { class: "wf-table runs-table" },
      h("thead", {}, h("tr", {}, ["Run", "Status", "Trigger", "Started by", "Version", "Started", "Duration"].map((t, i) =>
        h("th", { class: i === 4 || i === 6 ? "num" : null }, t)))),
      h("tbody", {}, state.runs.map(row))));
  }
  const first = state.count ? state.offset + 1 : 0, last = state.offset + state.runs.length;
  $("runs-count").textContent = `${state.count} run${state.count === 1 ? "" : "s"}${filtered() ? " matching" : ""}`;
  $("filter-clear").hidden = !filtered();
  $("page-info").textContent = state.count ? `${first}–${last} of ${state.count}` : "";
  $("btn-prev").disabled = state.offset === 0;
  $("btn-next").disabled = last >= state.count;
  document.querySelector(".pager").hidden = state.count <= LIMIT && state.offset === 0;
}

let seq = 0;
async function load() {
  const mine = ++seq;
  const q = new URLSearchParams({ limit: String(LIMIT), offset: String(state.offset) });
  if (state.statuses.size) q.set("status", [...state.statuses].join(","));
  for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
  syncUrl();
  renderChips();
  try {
    const page = await request("GET", `/api/workflows/${wfId}/runs/?${q}`);
    if (mine !== seq) return;
    state.runs = page.results;
    state.count = page.count;
    if (!state.runs.length && state.offset > 0 && state.count > 0) { state.offset = Math.max(0, state.count - LIMIT); return load(); }
    render();
    document.body.dataset.ready = "true";
  } catch (err) {
    toast(`Could not load runs: ${err.message}`, "error");
  }
}

$("btn-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - LIMIT); load(); });
$("btn-next").addEventListener("click", () => { state.offset += LIMIT; load(); });

// ---- Run now ----------------------------------------------------------------------------------
async function runNow() {
  const area = h("textarea", { class: "mono payload-input", rows: 10, spellcheck: "false", "aria-label": "Payload (JSON)" });
  area.value = localStorage.getItem(`stepwell.payload.${wfId}`) || "{\n  \n}";
  const problem = h("div", { class: "field-error", role: "alert" });
  const body = h("div", {},
    h("label", { class: "field-label" }, "Payload"),
    h("p", { class: "muted small" }, "JSON the trigger receives as body."),
    area, problem);
  let created = null;
  const value = await modal({
    title: "Run now", body, className: "run-modal",
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "▶ Start run", value: "run", kind: "primary" }],
    onSubmit: async () => {
      let payload;
      try { payload = area.value.trim() ? JSON.parse(area.value) : {}; } catch (err) {
        problem.textContent = `Not valid JSON: ${err.message}`;
        return false;
      }
      try {
        created = await request("POST", `/api/workflows/${wfId}/runs/`, { payload });
        localStorage.setItem(`stepwell.payload.${wfId}`, area.value);
        return true;
      } catch (err) {
        problem.replaceChildren(err.message, err.errors?.length ? errorList(err.errors) : "");
        return false;
      }
    },
  });
  if (value === "run" && created) {
    toast(h("span", {}, `Run #${created.id} started · `, h("a", { href: created.page }, "open")), "success");
    clearFilters();
    await load();
    document.querySelector(`tr[data-run="${created.id}"]`)?.classList.add("flash");
  }
}
$("btn-run").addEventListener("click", runNow);

// ---- live -------------------------------------------------------------------------------------
// A run's status event refreshes the page when it is about a run on the page or a new run
// (first page only); step events are ignored here.
let timer = null;
function soon() { clearTimeout(timer); timer = setTimeout(load, 250); }

function onEvent(msg) {
  if (msg.type !== "run.status") return;
  const shown = state.runs.find((r) => r.id === msg.run_id);
  if (shown) {
    if (shown.status !== msg.status) {
      shown.status = msg.status;
      const tr = document.querySelector(`tr[data-run="${msg.run_id}"]`);
      tr?.children[1].replaceChildren(badge(msg.status));
    }
    soon();
  } else if (state.offset === 0 && msg.run_id > (state.runs[0]?.id || 0)) {
    soon();
  }
}

const follower = new Follower(`/ws/workflows/${wfId}/`, {
  onMessage: onEvent,
  poll: () => { if (state.runs.some((r) => isActive(r.status))) load(); },
  onOpen: () => $("live").classList.add("on"),
  onClose: () => $("live").classList.remove("on"),
});

const elapsed = (since) => `${fmtMs(Math.max(0, Date.now() - new Date(since).getTime()))}…`;
setInterval(() => {
  for (const el of document.querySelectorAll(".ticker[data-since]")) el.textContent = elapsed(el.dataset.since);
}, 1000);

// relative times age while the page stays open
setInterval(() => {
  for (const t of document.querySelectorAll(".runs-table time")) t.textContent = relativeTime(t.getAttribute("datetime"));
}, 30000);

setupFilters();
load();
follower.start();
