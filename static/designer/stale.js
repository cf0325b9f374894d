// Stale data: what changed in a node and in the steps upstream of it between the definition some
// recorded data was made with (a pin's snapshot, a run's version) and the editor's definition.
// Pure functions: the picker and the node panel say "stale" with these reasons.

import { upstreamOf } from "./step-tools.js";

// JSON with sorted keys, so that key order does not count as a change.
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  return JSON.stringify(v ?? null);
}

function what(key, type) {
  if (key === "code") return "code";
  if (type === "action.python" && key === "inputs") return "input mappings";
  return key.replace(/_/g, " ");
}

// The parameters of `now` that differ from `then` ({type, parameters}), as words ("code").
export function changedParameters(then, now) {
  if (!then || !now) return [];
  if (then.type !== now.type) return ["type"];
  const a = then.parameters || {}, b = now.parameters || {};
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => canonical(a[k]) !== canonical(b[k])).map((k) => what(k, now.type));
}

// Reasons why data of `nodeId` recorded with `snapshotNodes` ({id: {type, parameters}}) is stale
// for the definition `def`: its own changes, then each changed, added or removed upstream step.
export function staleReasons(snapshotNodes, def, nodeId) {
  if (!snapshotNodes) return [];
  const byId = new Map(def.nodes.map((n) => [n.id, n]));
  const reasons = [];
  const own = byId.get(nodeId);
  if (own && snapshotNodes[nodeId]) {
    const c = changedParameters(snapshotNodes[nodeId], own);
    if (c.length) reasons.push(`${c.join(", ")} changed`);
  }
  for (const id of upstreamOf(def, nodeId)) {
    const n = byId.get(id);
    const label = `“${n.name || id}”`;
    if (!snapshotNodes[id]) { reasons.push(`upstream step ${label} is new`); continue; }
    const c = changedParameters(snapshotNodes[id], n);
    if (c.length) reasons.push(`upstream step ${label}: ${c.join(", ")} changed`);
  }
  return reasons;
}
