"""What the designer shows about a node's recorded data: the node's steps in recent runs (the
panel's "Latest run" section) and the newest run's outputs with the definition it ran (samples
and stale markers in field pickers). Read only; the definitions let the editor say what changed
since (code, mappings, an upstream step)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from designer.api.errors import bad_request
from designer.api.runs import RunListSerializer, StepRunSerializer, _owned_workflow
from engine.models import Run, StepRun
from engine.status import Status

MAX_RUNS = 20
MAX_STEPS = 50   # per run (a For each body node has a step per item)


def _nodes_of(definition: dict | None) -> dict:
    """{node_id: {type, parameters}}: what a version's nodes did (for "what changed")."""
    return {n["id"]: {"type": n.get("type"), "parameters": n.get("parameters") or {}}
            for n in (definition or {}).get("nodes", [])}


def _limit(request, default: int):
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
        return None
    return int(raw)


class NodeRuns(APIView):
    """The newest runs (?kind=run|test, ?limit=1..20, default 5) that have a step of this node,
    each with the node's steps (inputs, output, stdout, stderr, error) and the run's definition."""

    @extend_schema(responses={200: OpenApiResponse(
        description="{node_id, runs: [{run, steps: [step], nodes: {node_id: {type, parameters}}}]}")})
    def get(self, request, pk, node_id):
        workflow = _owned_workflow(request, pk)
        limit = _limit(request, 5)
        if limit is None:
            return bad_request(f"limit must be 1 to {MAX_RUNS}", "$.limit")
        kind = request.query_params.get("kind", Run.Kind.RUN)
        if kind not in Run.Kind.values:
            return bad_request(f"kind must be one of {', '.join(Run.Kind.values)}", "$.kind")
        run_ids = list(StepRun.objects.filter(run__workflow=workflow, run__kind=kind, node_id=node_id)
                       .values_list("run_id", flat=True).order_by("-run_id").distinct()[:limit])
        runs = Run.objects.filter(pk__in=run_ids).select_related("version", "started_by").order_by("-id")
        out = []
        for run in runs:
            steps = StepRun.objects.filter(run=run, node_id=node_id).order_by("-id")[:MAX_STEPS]
            out.append({"run": RunListSerializer(run).data,
                        "steps": StepRunSerializer(list(reversed(steps)), many=True).data,
                        "nodes": _nodes_of(run.version.definition)})
        return Response({"node_id": node_id, "runs": out})


class LatestRunData(APIView):
    """The newest finished run's top-level outputs {node_id: output} and the definition it ran
    ({run: null} when the workflow never ran)."""

    @extend_schema(responses={200: OpenApiResponse(
        description="{run, outputs: {node_id: output}, nodes: {node_id: {type, parameters}}}")})
    def get(self, request, pk):
        workflow = _owned_workflow(request, pk)
        run = workflow.runs.filter(kind=Run.Kind.RUN, status__in=[Status.SUCCEEDED, Status.FAILED,
                                                                  Status.TIMED_OUT, Status.CANCELLED]) \
            .select_related("version", "started_by").order_by("-id").first()
        if run is None:
            return Response({"run": None, "outputs": {}, "nodes": {}})
        outputs = {}
        for s in StepRun.objects.filter(run=run, item_index__isnull=True, status=Status.SUCCEEDED).order_by("id"):
            outputs[s.node_id] = s.output
        return Response({"run": RunListSerializer(run).data, "outputs": outputs,
                         "nodes": _nodes_of(run.version.definition)})


def pin_snapshots(workflow, pins) -> dict:
    """{node_id: {version, nodes}} per pin: the newest saved version (of the last 50) in which the
    pinned node was as it was pinned (same type and parameters), so the editor can say what changed
    since, in the node or upstream; a pin with no such version is left out."""
    from engine.actions import node_params_hash

    out, wanted = {}, {p.node_id: p.params_hash for p in pins}
    for version in workflow.versions.order_by("-number")[:50]:
        if not wanted:
            break
        nodes = (version.definition or {}).get("nodes", [])
        for node in nodes:
            if wanted.get(node["id"]) == node_params_hash(node):
                out[node["id"]] = {"version": version.number, "nodes": _nodes_of(version.definition)}
                del wanted[node["id"]]
    return out
