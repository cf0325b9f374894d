// The run-status model the pages share: the statuses of runs and steps with their labels, which
// of them are still going, and how the steps of one node (items, attempts) add up to the one
// status, label and summary line the node shows. Pure: no DOM, no requests.

// every status in the order the pages list them; "pending" is a node with no step yet
export const LABEL = {
  queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed",
  cancelled: "Cancelled", timed_out: "Timed out", skipped: "Skipped", pending: "Not run",
};
export const STATUSES = Object.keys(LABEL);
export const ACTIVE = new Set(["queued", "running"]);
export const isActive = (status) => ACTIVE.has(status);
export const label = (status) => LABEL[status] || status;
// the status a node shows when its steps (items, attempts) differ: the first one present wins
export const PRIORITY = ["running", "failed", "timed_out", "cancelled", "queued", "succeeded", "skipped"];

// a duration in milliseconds as people read it: "850 ms", "1.25 s", "12.5 s", "2 min 5 s"
export const formatMs = (ms) => ms == null ? "" : ms < 1000 ? `${Math.round(ms)} ms`
  : ms < 60000 ? `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`
    : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;

// steps of one node → the latest attempt of each item (a node without items has one, -1)
export function latestAttempts(steps) {
  const latest = new Map();
  for (const s of steps) {
    const key = s.item_index ?? -1;
    const prev = latest.get(key);
    if (!prev || s.attempt > prev.attempt || (s.attempt === prev.attempt && s.id > prev.id)) latest.set(key, s);
  }
  return [...latest.values()];
}

// the latest steps of one node (not empty) → the most telling status among them; some items
// done and others queued is a node still running
export function statusOf(latest) {
  let status = PRIORITY.find((p) => latest.some((s) => s.status === p)) || latest[0].status;
  if (status === "queued" && latest.some((s) => s.status === "succeeded")) status = "running";
  return status;
}

// steps: [{id, node_id, item_index, attempt, status}] → Map(node id -> status); steps without a
// node are left out
export function nodeStatuses(steps) {
  const byNode = new Map();
  for (const s of steps) {
    if (!s.node_id) continue;
    if (!byNode.has(s.node_id)) byNode.set(s.node_id, []);
    byNode.get(s.node_id).push(s);
  }
  return new Map([...byNode].map(([id, list]) => [id, statusOf(latestAttempts(list))]));
}

// steps of one node → {status, label, meta}: meta says how many items, the latest attempt when
// retried, and the time its latest steps took, e.g. "3 items · attempt 2 · 1.25 s"
export function nodeSummary(steps) {
  const latest = latestAttempts(steps);
  if (!latest.length) return { status: "pending", label: LABEL.pending, meta: "" };
  const status = statusOf(latest);
  const items = latest.filter((s) => s.item_index != null).length;
  const attempts = Math.max(...latest.map((s) => s.attempt));
  const ms = latest.reduce((a, s) => a + (s.duration_ms || 0), 0);
  const bits = [];
  if (items) bits.push(`${items} item${items === 1 ? "" : "s"}`);
  if (attempts > 1) bits.push(`attempt ${attempts}`);
  if (ms) bits.push(formatMs(ms));
  return { status, label: label(status), meta: bits.join(" · ") };
}
