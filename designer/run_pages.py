"""HTML page of one run (data from the REST API, live updates from ws/runs/<id>/)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from engine.models import Run


@login_required
def run_detail(request, pk: int):
    run = get_object_or_404(Run.objects.select_related("workflow", "version"), pk=pk,
                            workflow__owner=request.user)
    return render(request, "designer/run_detail.html", {"run": run})
