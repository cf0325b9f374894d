"""Rerun from a step: a new run that reuses the recorded outputs of everything upstream of one
step of an earlier run and runs from that step on (of the saved head, the recorded version or
an unsaved draft).

The new run is kind=run, trigger=rerun, rerun_of=<source>, with the source's trigger payload and
`Run.test_upstream = {"rerun_from": {"node": id, "item_index": i | null, "source_run": id}}`
(kind=run keeps other notes there too: engine/pinned.py). Its executor asks `RerunPlan.reused()`
before running a node:

- runs anew: the step itself, every node reachable from it (its descendants, across For each
  bodies), and the For each it sits in (whose output gathers the items), with that For each's
  descendants;
- inside that For each, with `item_index`, only that iteration runs from the step on; the other
  iterations, and the nodes of that iteration upstream of the step, reuse their records; without
  `item_index` every iteration runs from the step on;
- a step inside nested For eaches reruns from its outermost For each (step records carry only
  the innermost item index, so iterations of outer loops cannot be told apart);
- everything else reuses its last succeeded record of the source run (output, inputs, logs,
  files), recorded as a succeeded step with `sandbox = {"reused": {"run": id, "step": id}}`; a
  node without such a record (it failed or did not run) runs. Skipped nodes are skipped again
  by the same edges (Conditions reuse their taken port: `output.result`).
"""
from __future__ import annotations

from engine.graph import Graph
from engine.models import Run, StepRun
from engine.status import Status


class RerunRefused(ValueError):
    """The rerun cannot start (message for the user; `path` names the field)."""

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.path = path


def spec_of(run: Run) -> dict | None:
    """The rerun_from note of a run ({node, item_index, source_run}), or None."""
    if run.kind != Run.Kind.RUN or not isinstance(run.test_upstream, dict):
        return None
    spec = run.test_upstream.get("rerun_from")
    return spec if isinstance(spec, dict) and isinstance(spec.get("node"), str) else None


def check(source: Run, definition: dict, from_node, item_index) -> tuple[str, int | None]:
    """(from_node, item_index) when a rerun of `definition` from that step may start.

    :raises RerunRefused: the source is still active, the node is not in the definition, or the
        item index does not fit it.
    """
    if not source.is_finished:
        raise RerunRefused(f"run {source.pk} is still {source.status}; rerun it from a step once it ended")
    if source.kind != Run.Kind.RUN:
        raise RerunRefused("a step test cannot be rerun from a step; test the step again")
    graph = Graph(definition or {})
    if not isinstance(from_node, str) or from_node not in graph.nodes:
        raise RerunRefused(f"node {from_node!r} is not in the workflow definition that would run",
                           "$.from_node")
    if item_index is not None:
        if isinstance(item_index, bool) or not isinstance(item_index, int) or item_index < 0:
            raise RerunRefused("item_index must be a For each item index (an integer >= 0) or null",
                               "$.item_index")
        if graph.owner.get(from_node) is None:
            raise RerunRefused(f"{from_node!r} is not inside a For each: give no item_index", "$.item_index")
    return from_node, item_index


def descendants(graph: Graph, node_id: str) -> set[str]:
    seen: set[str] = set()
    stack = [dst for _, dst in graph.out_edges[node_id]]
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        stack.extend(dst for _, dst in graph.out_edges[nid])
    return seen


def _enclosing(graph: Graph, node_id: str) -> list[str]:
    """The For eaches around `node_id`, innermost first."""
    chain, nid = [], node_id
    while graph.owner.get(nid):
        nid = graph.owner[nid]
        chain.append(nid)
    return chain


class RerunPlan:
    """Which steps of a rerun reuse which records of the source run."""

    def __init__(self, graph: Graph, spec: dict):
        self.source_run = int(spec.get("source_run") or 0)
        node, item = spec["node"], spec.get("item_index")
        loops = _enclosing(graph, node) if node in graph.nodes else []
        if len(loops) > 1:          # nested: from the outermost loop, every iteration
            node, item, loops = loops[-1], None, []
        self.node, self.item_index = node, item
        self.loop = loops[0] if loops else None
        fresh = {node} | (descendants(graph, node) if node in graph.nodes else set())
        if self.loop is not None:
            fresh |= {self.loop} | descendants(graph, self.loop)
        self.fresh = fresh
        self.body = graph.body(self.loop) if self.loop is not None else set()
        nested = {n for n, owner in graph.owner.items() if owner != self.loop and owner is not None}
        self.records: dict[tuple[str, int | None], StepRun] = {}
        for step in StepRun.objects.filter(run_id=self.source_run, status=Status.SUCCEEDED).order_by("id"):
            if step.node_id in nested:   # iterations of other loops' bodies are not told apart
                continue
            self.records[(step.node_id, step.item_index)] = step

    def reused(self, node_id: str, item_index) -> StepRun | None:
        """The source's record that node `node_id` (in iteration `item_index`) reuses, or None
        when it runs."""
        if node_id in self.fresh:
            other_item = (self.item_index is not None and node_id in self.body
                          and item_index is not None and item_index != self.item_index)
            if not other_item:
                return None
        return self.records.get((node_id, item_index))


def plan_for(run: Run, graph: Graph) -> RerunPlan | None:
    spec = spec_of(run)
    return RerunPlan(graph, spec) if spec is not None else None


def ports_of(node: dict, output) -> tuple[str, ...]:
    """The ports a reused record continues on."""
    if node["type"] == "control.condition":
        return ("true",) if isinstance(output, dict) and output.get("result") else ("false",)
    if node["type"] == "control.foreach":
        return ("done",)
    return ("out",)


def do_rerun_from(source: Run, user, from_node, item_index=None, *, same_version: bool = False,
                  draft: dict | None = None) -> Run:
    """Start the rerun of `source` from `from_node` (see the module docstring): of `draft` when
    given (validated by the caller), else of the recorded version (`same_version`) or the head.

    :raises RerunRefused: see check(). :raises RunRefused, TooManyRuns: as do_start_run.
    """
    from engine.actions import do_start_run

    version = source.version if same_version else source.workflow.head
    definition = draft if draft is not None else (version.definition if version is not None else {})
    from_node, item_index = check(source, definition, from_node, item_index)
    kw = {"draft": draft} if draft is not None else {}
    return do_start_run(source.workflow, source.payload, Run.Trigger.RERUN, user, version=version,
                        rerun_of=source, **kw,
                        test_upstream={"rerun_from": {"node": from_node, "item_index": item_index,
                                                      "source_run": source.pk}})
