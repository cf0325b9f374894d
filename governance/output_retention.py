"""The policy's output retention: what steps produced (inputs, output, logs, files) is cleared from
runs that finished longer ago than `Policy.output_retention_days` (unset: kept forever). The run
and step records stay (status, timings, sandbox metadata), and so do their audit events.
"""
from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.actions import record
from governance.policies import current


def prune_outputs(days: int | None = None, now=None) -> int:
    """Clear the outputs of steps finished more than `days` (default: the policy's) ago; returns
    how many steps were cleared."""
    from engine.models import StepFile, StepRun

    days = days if days is not None else current().output_retention_days
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = StepRun.objects.filter(finished__lt=cutoff).filter(
        ~Q(stdout="") | ~Q(stderr="") | Q(output__isnull=False) | Q(inputs__isnull=False) | ~Q(files=[]))
    with transaction.atomic():
        ids = list(old.values_list("pk", flat=True)[:50_000])
        if not ids:
            return 0
        StepFile.objects.filter(step_id__in=ids).delete()
        StepRun.objects.filter(pk__in=ids).update(inputs=None, output=None, stdout="", stderr="", files=[])
        record("retention.outputs", actor="system", payload={"steps": len(ids), "retention_days": days,
                                                            "cutoff": cutoff.isoformat()})
    return len(ids)
