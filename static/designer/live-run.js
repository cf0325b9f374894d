// A run started from the editor, followed live: step status events from ws/runs/<id>/ (polling
// GET /api/runs/<id>/ while the socket is away) become one status per node.
//
// Events (CustomEvent, detail in braces):
//   statuses {statuses: Map(node id -> status), run: {id, status}}   after every change
//   finished {status}                                                  the run reached a final status
//   output {node_id, step_id, item_index, stdout, stderr, text: {stdout, stderr}}
//                                            live output of a running code step (text: all so far)

import { api } from "./api.js";
import { Follower } from "./follow.js";
import { isActive, nodeStatuses } from "./run-status.js";

export class LiveRun extends EventTarget {
  constructor(run) {
    super();
    this.id = run.id;
    this.status = run.status;
    this.page = run.page || `/runs/${run.id}/`;
    this.steps = new Map((run.steps || []).map((s) => [s.id, s]));
    this.output = new Map();   // step id -> {stdout, stderr} streamed so far (step.output events)
    this.closed = false;
    this.follower = new Follower(`/ws/runs/${this.id}/`, {
      onMessage: (msg) => this._onEvent(msg),
      poll: () => this._refresh(),
      following: () => !this.closed && isActive(this.status),
      pollMs: 1500, retryMs: 500, maxRetryMs: 15000, pollAfterRefusal: true,
    });
    this._emitStatuses();
    this.follower.start();
    this._refresh();
  }

  get statuses() { return nodeStatuses([...this.steps.values()]); }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  _emitStatuses() {
    this._emit("statuses", { statuses: this.statuses, run: { id: this.id, status: this.status } });
  }

  _onEvent(msg) {
    if (msg.type === "step.status" && msg.step_id != null) {
      const prev = this.steps.get(msg.step_id) || {};
      this.steps.set(msg.step_id, { ...prev, id: msg.step_id, node_id: msg.node_id, item_index: msg.item_index,
        attempt: msg.attempt, status: msg.status });
      this._emitStatuses();
    } else if (msg.type === "step.output" && msg.step_id != null) {
      const text = this.output.get(msg.step_id) || { stdout: "", stderr: "" };
      text.stdout += msg.data?.stdout || "";
      text.stderr += msg.data?.stderr || "";
      this.output.set(msg.step_id, text);
      this._emit("output", { node_id: msg.node_id, step_id: msg.step_id, item_index: msg.item_index,
        stdout: msg.data?.stdout || "", stderr: msg.data?.stderr || "", text });
    } else if (msg.type === "run.status") {
      this._setRunStatus(msg.status);
    }
  }

  _setRunStatus(status) {
    const was = this.status;
    this.status = status;
    this._emitStatuses();
    if (isActive(was) && !isActive(status)) {
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
      if (this.closed && isActive(run.status)) return;
      for (const s of run.steps || []) this.steps.set(s.id, { ...(this.steps.get(s.id) || {}), ...s });
      this.page = run.page || this.page;
      if (run.status !== this.status) this._setRunStatus(run.status);
      else this._emitStatuses();
    } catch { /* the socket or the next poll will tell */ }
  }

  close() {
    this.closed = true;
    this.follower.close();
  }
}
