// Packages & runtimes page (staff): the allow-list, wheel uploads, builds with live progress,
// the active runtime and the difference between two runtimes. Data: /api/packages/, /api/runtimes/.
import { ApiError, request } from "../designer/api.js";
import { confirmDialog, h, modal, relativeTime, toast } from "../designer/ui.js";

const boot = JSON.parse(document.getElementById("runtimes-boot").textContent);
const $ = (id) => document.getElementById(id);
const PHASES = ["resolving", "installing", "checking", "imaging"];
const state = { packages: [], runtimes: [], active: null, current: null, search: "", timer: null };

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function fail(err) {
  const details = err instanceof ApiError ? err.errors.filter((e) => e.message !== err.message).map((e) => e.message) : [];
  toast(err.message || String(err), "error", { details, timeout: 6000 });
}

const fmtMB = (n) => (n == null ? "–" : `${(n / 1e6).toFixed(n > 1e7 ? 0 : 1)} MB`);
const statusBadge = (s) => h("span", { class: `status status-${s}`, dataset: { status: s } }, s);

function duration(rt) {
  if (!rt.started) return "–";
  const end = rt.finished ? new Date(rt.finished) : new Date();
  const s = Math.max(0, Math.round((end - new Date(rt.started)) / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ------------------------------------------------------------------ data
async function loadPackages() {
  const q = state.search ? `?search=${encodeURIComponent(state.search)}` : "";
  state.packages = await request("GET", `/api/packages/${q}`);
  renderPackages();
}

async function loadRuntimes() {
  const page = await request("GET", "/api/runtimes/?limit=50");
  state.runtimes = page.results || page;
  const activeRow = state.runtimes.find((r) => r.active);
  if (activeRow && (!state.active || state.active.id !== activeRow.id)) {
    state.active = await request("GET", `/api/runtimes/${activeRow.id}/`);
  } else if (!activeRow) {
    state.active = null;
  }
  const latest = state.runtimes[0];
  const showCurrent = latest && !latest.active && (!state.active || latest.id > state.active.id);
  state.current = showCurrent ? await request("GET", `/api/runtimes/${latest.id}/`) : null;
  renderActive();
  renderCurrent();
  renderRuntimes();
  renderDiffSelects();
  schedule();
}

function schedule() {
  clearTimeout(state.timer);
  const busy = state.runtimes.some((r) => r.status === "queued" || r.status === "building");
  state.timer = setTimeout(() => loadRuntimes().then(() => busy && loadPackagesQuiet()).catch(() => schedule()),
    busy ? 1500 : 10000);
}

function loadPackagesQuiet() { return loadPackages().catch(() => {}); }

// ------------------------------------------------------------------ rendering
function renderActive() {
  const el = $("active-card");
  const rt = state.active;
  if (!rt) {
    el.replaceChildren(h("div", { class: "rt-card-head" }, h("h3", {}, "Active runtime")),
      h("p", { class: "muted" }, "No runtime is active yet: code steps can import the standard library only. Build one to make the allow-list available."));
    return;
  }
  const requested = new Set(rt.lock.filter((p) => p.requested).map((p) => p.name));
  el.replaceChildren(
    h("div", { class: "rt-card-head" }, h("h3", {}, `Active runtime #${rt.id}`), h("span", { class: "active-flag" }, "ACTIVE")),
    h("dl", { class: "rt-facts" },
      h("dt", {}, "Activated"), h("dd", { title: rt.activated || "" }, rt.activated ? relativeTime(rt.activated) : "–"),
      h("dt", {}, "Distributions"), h("dd", {}, `${rt.lock.length} (${requested.size} requested, ${rt.lock.length - requested.size} dependencies)`),
      h("dt", {}, "Layer"), h("dd", {}, h("code", { title: rt.layer_dir }, (rt.image_id || "").slice(0, 12)), " · ", fmtMB(rt.size_bytes)),
      h("dt", {}, "Modules"), h("dd", {}, `${rt.modules.length} importable top-level names`)),
    h("div", { class: "rt-chips", "aria-label": "Locked distributions" },
      rt.lock.map((p) => h("span", { class: `rt-chip ${p.requested ? "req" : ""}`, title: p.requested ? "on the allow-list" : "dependency" }, `${p.name}==${p.version}`))));
}

function phaseSteps(rt) {
  const idx = PHASES.indexOf(rt.phase);
  return h("div", { class: "rt-steps" }, PHASES.map((p, i) => h("span", {
    class: rt.status === "ready" || (idx >= 0 && i < idx) ? "done" : (i === idx ? "now" : ""),
  }, p)));
}

function renderCurrent() {
  const el = $("build-card");
  const rt = state.current;
  el.hidden = !rt;
  $("active-card").classList.toggle("rt-wide", !rt);
  if (!rt) return;
  const log = h("pre", { class: "rt-log", id: "current-log" }, rt.log || "Waiting for the worker…");
  el.replaceChildren(
    h("div", { class: "rt-card-head" }, h("h3", {}, `Build #${rt.id}`), statusBadge(rt.status),
      h("span", { class: "muted small" }, rt.reason || ""), h("span", { class: "spacer" }),
      h("span", { class: "muted small" }, duration(rt))),
    rt.status === "failed"
      ? h("div", { class: "rt-error", role: "alert" }, h("strong", {}, "Build failed — the previous runtime stays active. "), rt.error)
      : phaseSteps(rt),
    log);
  log.scrollTop = log.scrollHeight;
}

function renderPackages() {
  const el = $("pkg-table");
  const locked = new Map((state.active ? state.active.lock : []).map((p) => [p.name, p.version]));
  if (!state.packages.length) {
    el.replaceChildren(h("div", { class: "empty-state" }, h("h2", {}, state.search ? "No package matches" : "The allow-list is empty"),
      h("p", { class: "muted" }, state.search ? "Try another name." : "Add a package above or upload a wheel.")));
    return;
  }
  const rows = state.packages.map((p) => {
    const toggle = h("input", { type: "checkbox", checked: p.enabled, "aria-label": `${p.enabled ? "Disable" : "Enable"} ${p.name}` });
    toggle.addEventListener("change", () => patchPackage(p, { enabled: toggle.checked }, toggle));
    return h("tr", { class: p.enabled ? "" : "disabled", dataset: { name: p.normalized } },
      h("td", {}, h("span", { class: "wf-name" }, p.name)),
      h("td", { class: "nowrap" }, p.source === "wheel"
        ? h("span", { class: "src-wheel", title: `sha256 ${p.wheel_sha256}` }, p.wheel_filename)
        : h("span", { class: "rt-spec" }, p.specifier || "any version")),
      h("td", {}, locked.has(p.normalized) ? h("span", { class: "rt-installed" }, locked.get(p.normalized)) : h("span", { class: "muted small" }, p.enabled ? "not built yet" : "–")),
      h("td", { class: "keep" }, h("label", { class: "switch" }, toggle, h("span", {}))),
      h("td", { class: "wf-desc", title: p.notes }, p.notes || ""),
      h("td", { class: "muted small nowrap" }, p.added_by || "default list", " · ", relativeTime(p.added)),
      h("td", { class: "row-actions keep" },
        h("button", { class: "icon-btn", type: "button", title: "Edit version specifier and notes", onclick: () => editPackage(p) }, "Edit"),
        h("button", { class: "icon-btn danger", type: "button", title: `Remove ${p.name}`, onclick: () => removePackage(p) }, "Remove")));
  });
  el.replaceChildren(h("table", { class: "wf-table" },
    h("thead", {}, h("tr", {}, ["Package", "Version / source", "Installed", "Enabled", "Notes", "Added", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

function renderRuntimes() {
  const el = $("rt-table");
  if (!state.runtimes.length) {
    el.replaceChildren(h("div", { class: "skeleton" }, "No builds yet."));
    return;
  }
  const rows = state.runtimes.map((r) => h("tr", { id: `runtime-${r.id}` },
    h("td", { class: "num" }, `#${r.id}`),
    h("td", {}, statusBadge(r.status), " ", r.active ? h("span", { class: "active-flag" }, "ACTIVE") : null),
    h("td", { class: "wf-desc", title: r.error || r.reason }, r.status === "failed" ? h("span", { style: "color:var(--danger)" }, r.error) : r.reason),
    h("td", { class: "num" }, r.packages || "–"),
    h("td", { class: "muted small nowrap" }, r.requested_by || "system", " · ", relativeTime(r.created)),
    h("td", { class: "num muted small" }, duration(r), r.reused ? " (cached)" : ""),
    h("td", { class: "row-actions" },
      h("button", { class: "icon-btn", type: "button", onclick: () => showLog(r.id) }, "Log"),
      state.active && r.status === "ready" && !r.active
        ? h("button", { class: "icon-btn", type: "button", onclick: () => showDiff(state.active.id, r.id) }, "Diff") : null,
      r.status === "ready" && !r.active
        ? h("button", { class: "icon-btn", type: "button", onclick: () => activate(r) }, "Activate") : null)));
  el.replaceChildren(h("table", { class: "wf-table" },
    h("thead", {}, h("tr", {}, ["Build", "Status", "Reason", "Dists", "Requested", "Took", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

function renderDiffSelects() {
  const ready = state.runtimes.filter((r) => r.status === "ready");
  for (const [id, pick] of [["diff-from", 1], ["diff-to", 0]]) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren(...ready.map((r) => h("option", { value: r.id }, `#${r.id}${r.active ? " (active)" : ""}`)));
    if (keep && ready.some((r) => String(r.id) === keep)) sel.value = keep;
    else if (ready[pick]) sel.value = ready[pick].id;
  }
}

// ------------------------------------------------------------------ actions
async function patchPackage(p, changes, control) {
  try {
    await request("PATCH", `/api/packages/${p.id}/`, changes);
    toast(`${p.name}: saved, a new runtime is building`, "success");
  } catch (err) {
    if (control) control.checked = !control.checked;
    fail(err);
  }
  await Promise.all([loadPackages(), loadRuntimes()]).catch(fail);
}

async function editPackage(p) {
  const spec = h("input", { value: p.specifier, placeholder: "any version", disabled: p.source === "wheel" });
  const notes = h("textarea", { rows: 3 }, p.notes);
  const body = h("div", { class: "modal-body" },
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Version specifier"), spec,
      h("span", { class: "field-hint" }, p.source === "wheel" ? "An uploaded wheel is its own version." : "PEP 440, e.g. >=2.1,<3 or ==1.4.2")),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Notes"), notes));
  await modal({
    title: `Edit ${p.name}`, body,
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "Save", value: "ok", kind: "primary" }],
    onSubmit: async () => {
      const changes = { notes: notes.value };
      if (p.source !== "wheel" && spec.value !== p.specifier) changes.specifier = spec.value;
      try { await request("PATCH", `/api/packages/${p.id}/`, changes); } catch (err) { fail(err); return false; }
      toast(`${p.name} saved`, "success");
      await Promise.all([loadPackages(), loadRuntimes()]).catch(fail);
      return true;
    },
  });
}

async function removePackage(p) {
  if (!await confirmDialog(`Remove ${p.name}?`, `Code steps will no longer be able to import it once the new runtime is built.`, { confirmLabel: "Remove", danger: true })) return;
  try {
    await request("DELETE", `/api/packages/${p.id}/`);
    toast(`${p.name} removed; a new runtime is building`, "success");
  } catch (err) { fail(err); }
  await Promise.all([loadPackages(), loadRuntimes()]).catch(fail);
}

async function addPackage(e) {
  e.preventDefault();
  const req = $("add-req").value.trim();
  if (!req) return;
  const btn = e.submitter;
  if (btn) btn.classList.add("busy");
  try {
    const pkg = await request("POST", "/api/packages/", { requirement: req, notes: $("add-notes").value });
    $("add-req").value = ""; $("add-notes").value = "";
    toast(`${pkg.name} added; a new runtime is building`, "success");
  } catch (err) { fail(err); }
  if (btn) btn.classList.remove("busy");
  await Promise.all([loadPackages(), loadRuntimes()]).catch(fail);
}

async function uploadWheel(file) {
  if (!file) return;
  if (file.size > boot.maxWheelBytes) {
    toast(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${(boot.maxWheelBytes / 1e6).toFixed(0)} MB.`, "error");
    return;
  }
  const form = new FormData();
  form.append("file", file);
  const btn = $("btn-upload");
  btn.classList.add("busy");
  try {
    const res = await fetch("/api/packages/upload/", {
      method: "POST", body: form, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, data.detail || `Upload failed (${res.status})`, data.errors || []);
    toast(`${data.wheel_filename} accepted (sha256 ${data.wheel_sha256.slice(0, 12)}…); a new runtime is building`, "success", { timeout: 6000 });
  } catch (err) { fail(err); }
  btn.classList.remove("busy");
  $("wheel-file").value = "";
  await Promise.all([loadPackages(), loadRuntimes()]).catch(fail);
}

async function build() {
  try {
    const rt = await request("POST", "/api/runtimes/build/", { reason: "requested on the packages page" });
    toast(`Build #${rt.id} queued`, "success");
  } catch (err) { fail(err); }
  await loadRuntimes().catch(fail);
}

async function activate(r) {
  if (!await confirmDialog(`Activate runtime #${r.id}?`, "New executions will use it; running ones finish on the current runtime.", { confirmLabel: "Activate" })) return;
  try {
    await request("POST", `/api/runtimes/${r.id}/activate/`);
    toast(`Runtime #${r.id} is active`, "success");
  } catch (err) { fail(err); }
  state.active = null;
  await Promise.all([loadRuntimes(), loadPackages()]).catch(fail);
}

async function showLog(id) {
  const rt = await request("GET", `/api/runtimes/${id}/`).catch(fail);
  if (!rt) return;
  await modal({
    title: `Build #${rt.id} — ${rt.status}`, className: "modal-wide",
    body: h("div", {}, rt.error ? h("div", { class: "rt-error" }, rt.error) : null, h("pre", { class: "rt-log" }, rt.log || "(empty)")),
    buttons: [{ label: "Close", value: "cancel" }],
  });
}

async function showDiff(from, to) {
  $("diff-from").value = from; $("diff-to").value = to;
  const out = $("diff-out");
  let d;
  try { d = await request("GET", `/api/runtimes/diff/?from=${from}&to=${to}`); } catch (err) { fail(err); return; }
  const list = (items, cls, fmt) => items.length ? h("ul", { class: cls }, items.map((i) => h("li", {}, fmt(i)))) : null;
  const none = !d.added.length && !d.removed.length && !d.changed.length;
  out.hidden = false;
  out.replaceChildren(
    h("div", { class: "rt-card-head" }, h("h3", {}, `#${d.from} → #${d.to}`), h("span", { class: "muted small" }, `${d.unchanged} unchanged`)),
    none ? h("p", { class: "muted" }, "Same packages and versions.") : null,
    d.added.length ? h("strong", {}, "Added") : null, list(d.added, "add", (i) => `+ ${i.name}==${i.version}${i.requested ? "" : "  (dependency)"}`),
    d.removed.length ? h("strong", {}, "Removed") : null, list(d.removed, "rem", (i) => `− ${i.name}==${i.version}`),
    d.changed.length ? h("strong", {}, "Changed") : null, list(d.changed, "chg", (i) => `~ ${i.name} ${i.from} → ${i.to}`),
    d.modules_removed.length ? h("p", { class: "small" }, "No longer importable: ", h("code", {}, d.modules_removed.join(", "))) : null);
  out.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// ------------------------------------------------------------------ wiring
$("add-form").addEventListener("submit", addPackage);
$("btn-build").addEventListener("click", build);
$("btn-upload").addEventListener("click", () => $("wheel-file").click());
$("wheel-file").addEventListener("change", (e) => uploadWheel(e.target.files[0]));
$("diff-form").addEventListener("submit", (e) => { e.preventDefault(); showDiff($("diff-from").value, $("diff-to").value); });
let searchTimer = null;
$("pkg-search").addEventListener("input", (e) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { state.search = e.target.value.trim(); loadPackages().catch(fail); }, 200);
});

loadRuntimes().then(loadPackages).catch(fail);
