"""HTML pages of run history: the runs of a workflow and one run (live). Data comes from the REST
API and the websockets; these views only check ownership and hand the page its boot data."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from engine.models import Run, Workflow
from engine.nodes import NODE_TYPES
from engine.status import Status


def _node_types() -> dict:
    return {key: {"label": t.label, "category": t.category, "icon": t.icon, "outputs": list(t.outputs)}
            for key, t in NODE_TYPES.items()}


@login_required
def workflow_runs(request, pk: int):
    workflow = get_object_or_404(Workflow, pk=pk, owner=request.user)
    boot = {"workflow": {"id": workflow.pk, "name": workflow.name},
            "statuses": [{"value": s.value, "label": s.label} for s in Status if s != Status.SKIPPED]}
    return render(request, "designer/workflow_runs.html", {"workflow": workflow, "boot": boot})


@login_required
def run_detail(request, pk: int):
    run = get_object_or_404(Run.objects.select_related("workflow", "version"), pk=pk,
                            workflow__owner=request.user)
    boot = {"id": run.pk, "workflow": run.workflow_id, "workflow_name": run.workflow.name,
            "version": run.version.number, "definition": run.version.definition, "nodeTypes": _node_types(),
            "audit": request.user.is_staff}   # staff see a link from each step to its audit event
    return render(request, "designer/run_detail.html", {"run": run, "boot": boot})
