// A run started from the editor, followed live: step status events from ws/runs/<id>/ (polling
// GET /api/runs/<id>/ while the socket is away) become one status per node.
//
// Events (CustomEvent, detail in braces):
//   statuses {statuses: Map(node id -> status), run: {id, status}}   after every change
//   finished {status}                                                  the run reached a final status

import { api } from "./api.js";

export const ACTIVE = new Set(["queued", "running"]);
// the status a node shows when its steps (items, attempts) differ: the first one present wins
const PRIORITY = ["running", "failed", "timed_out", "cancelled", "queued", "succeeded", "skipped"];

// steps: [{id, node_id, item_index, attempt, status}] → Map(node id -> status)
export function nodeStatuses(steps) {
  const latest = new Map();  // node id -> Map(item -> step)
  for (const s of steps) {
    if (!s.node_id) continue;
    if (!latest.has(s.node_id)) latest.set(s.node_id, new Map());
    const items = latest.get(s.node_id);
    const key = s.item_index ?? -1;
    const prev = items.get(key);
    if (!prev || s.attempt > prev.attempt || (s.attempt === prev.attempt && s.id > prev.id)) items.set(key, s);
  }
  const out = new Map();
  for (const [id, items] of latest) {
    const list = [...items.values()];
    let status = PRIORITY.find((p) => list.some((s) => s.status === p)) || list[0].status;
    if (status === "queued" && list.some((s) => s.status === "succeeded")) status = "running";
    out.set(id, status);
  }
  return out;
}

export class LiveRun extends EventTarget {
  constructor(run) {
    super();
    this.id = run.id;
    this.status = run.status;
    this.page = run.page || `/runs/${run.id}/`;
    this.steps = new Map((run.steps || []).map((s) => [s.id, s]));
    this.closed = false;
    this.socket = null;
    this.poller = null;
    this.retry = 500;
    this._emitStatuses();
    this._connect();
    this._refresh();
  }

  get statuses() { return nodeStatuses([...this.steps.values()]); }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  _emitStatuses() {
    this._emit("statuses", { statuses: this.statuses, run: { id: this.id, status: this.status } });
  }

  _connect() {
    if (this.closed || !ACTIVE.has(this.status)) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${proto}://${location.host}/ws/runs/${this.id}/`);
    } catch {
      this._poll();
      return;
    }
    this.socket = socket;
    socket.onopen = () => { this.retry = 500; this._stopPolling(); };
    socket.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this._onEvent(msg);
    };
    socket.onclose = (e) => {
      this.socket = null;
      if (this.closed || !ACTIVE.has(this.status) || e.code === 4401 || e.code === 4404) {
        if (ACTIVE.has(this.status) && !this.closed) this._poll();
        return;
      }
      this._poll();
      setTimeout(() => this._connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 15000);
    };
  }

  _onEvent(msg) {
    if (msg.type === "step.status" && msg.step_id != null) {
      const prev = this.steps.get(msg.step_id) || {};
      this.steps.set(msg.step_id, { ...prev, id: msg.step_id, node_id: msg.node_id, item_index: msg.item_index,
        attempt: msg.attempt, status: msg.status });
      this._emitStatuses();
    } else if (msg.type === "run.status") {
      this._setRunStatus(msg.status);
    }
  }

  _setRunStatus(status) {
    const was = this.status;
    this.status = status;
    this._emitStatuses();
    if (ACTIVE.has(was) && !ACTIVE.has(status)) {
      // One last read so that no step event is missed, then stop.
      this._refresh().finally(() => {
        this._emit("finished", { status: this.status });
        this.close();
      });
    }
  }

  async _refresh() {
    try {
      const run = await api.run(this.id);
      if (this.closed && ACTIVE.has(run.status)) return;
      for (const s of run.steps || []) this.steps.set(s.id, { ...(this.steps.get(s.id) || {}), ...s });
      this.page = run.page || this.page;
      if (run.status !== this.status) this._setRunStatus(run.status);
      else this._emitStatuses();
    } catch { /* the socket or the next poll will tell */ }
  }

  _poll() {
    if (this.poller || this.closed) return;
    this.poller = setInterval(() => {
      if (!ACTIVE.has(this.status)) { this._stopPolling(); return; }
      this._refresh();
    }, 1500);
  }

  _stopPolling() {
    clearInterval(this.poller);
    this.poller = null;
  }

  close() {
    this.closed = true;
    this._stopPolling();
    if (this.socket) { try { this.socket.close(); } catch { /* already closed */ } }
    this.socket = null;
  }
}
