"""Graph helpers over a definition: edges by node, ancestors, For each bodies, scopes."""
from __future__ import annotations

from functools import cached_property


class Graph:
    """Read-only view of a (valid) definition's nodes and edges."""

    def __init__(self, definition: dict):
        self.definition = definition
        self.nodes: dict[str, dict] = {n["id"]: n for n in definition.get("nodes", [])}
        self.order = [n["id"] for n in definition.get("nodes", [])]
        self.out_edges: dict[str, list[tuple[str, str]]] = {nid: [] for nid in self.nodes}
        self.in_edges: dict[str, list[tuple[str, str]]] = {nid: [] for nid in self.nodes}
        for e in definition.get("edges", []):
            src, dst = e.get("source"), e.get("target")
            if src in self.nodes and dst in self.nodes and src != dst:
                port = e.get("source_port", "out")
                self.out_edges[src].append((port, dst))
                self.in_edges[dst].append((src, port))

    @cached_property
    def trigger(self) -> str | None:
        from engine.nodes import NODE_TYPES

        for nid in self.order:
            t = NODE_TYPES.get(self.nodes[nid]["type"])
            if t and t.is_trigger:
                return nid
        return None

    def body(self, foreach_id: str) -> set[str]:
        """Nodes run per item: reachable from the node's `each` port, or with parent=foreach_id."""
        seen: set[str] = set()
        stack = [dst for port, dst in self.out_edges[foreach_id] if port == "each"]
        stack += [nid for nid, n in self.nodes.items() if n.get("parent") == foreach_id]
        while stack:
            nid = stack.pop()
            if nid in seen or nid == foreach_id:
                continue
            seen.add(nid)
            stack.extend(dst for _, dst in self.out_edges[nid])
        return seen

    @cached_property
    def owner(self) -> dict[str, str]:
        """node id -> the innermost For each whose body it belongs to."""
        owner: dict[str, str] = {}
        foreaches = [nid for nid in self.order if self.nodes[nid]["type"] == "control.foreach"]
        bodies = {f: self.body(f) for f in foreaches}
        # innermost = the smallest body containing the node
        for f in sorted(foreaches, key=lambda f: -len(bodies[f])):
            for nid in bodies[f]:
                owner[nid] = f
        return owner

    def scope(self, foreach_id: str | None) -> list[str]:
        """Nodes directly in a scope (top level when None), in topological order."""
        members = {nid for nid in self.nodes if self.owner.get(nid) == foreach_id}
        return self.topo(members)

    def topo(self, members: set[str]) -> list[str]:
        indeg = {n: 0 for n in members}
        for n in members:
            for src, _ in self.in_edges[n]:
                if src in members:
                    indeg[n] += 1
        ready = [n for n in self.order if n in members and indeg[n] == 0]
        out = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for _, dst in self.out_edges[n]:
                if dst in members:
                    indeg[dst] -= 1
                    if indeg[dst] == 0:
                        ready.append(dst)
        return out

    def ancestors(self, node_id: str) -> set[str]:
        """Nodes whose outputs exist when `node_id` runs: graph predecessors and enclosing For eaches."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            nid = stack.pop()
            preds = [src for src, _ in self.in_edges.get(nid, [])]
            parent = self.nodes.get(nid, {}).get("parent") or self.owner.get(nid)
            if parent:
                preds.append(parent)
            for p in preds:
                if p not in seen and p != node_id:
                    seen.add(p)
                    stack.append(p)
        return seen
