"""HTML pages: sign-in, workflow list, canvas editor. Data comes from the REST API."""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from engine.models import Workflow
from engine.nodes import NODE_TYPES
from engine.validation import capped_parameters


def home(request):
    return redirect("workflow-list")


@login_required
def workflow_list(request):
    return render(request, "designer/workflow_list.html", {})


@login_required
def workflow_edit(request, pk: int):
    workflow = get_object_or_404(Workflow.objects.select_related("head"), pk=pk, owner=request.user)
    boot = {
        "workflow": {
            "id": workflow.pk, "name": workflow.name, "description": workflow.description,
            "version": workflow.head.number if workflow.head else None,
            "definition": workflow.definition,
        },
        # the maxima this server accepts for timeouts and memory (checked at save)
        "nodeTypes": [{**t.to_dict(), "parameters_schema": capped_parameters(t.key, t.parameters)}
                      for t in NODE_TYPES.values()],
    }
    return render(request, "designer/editor.html", {"workflow": workflow, "boot": boot})
