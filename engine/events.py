"""Notify listeners of a new StepEvent.

Every status change is first appended as a `StepEvent` row (see `engine.states.transition`);
that row is what websocket consumers stream, so events written by the worker process reach
browsers connected to the web process even with the in-memory channel layer (the consumer tails
the table). With Redis (REDIS_URL) the worker also pushes each event at once through the
channel layer; consumers drop events they already sent (by event id).
"""
from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger("engine.events")


def workflow_group(workflow_id: int) -> str:
    return f"workflow-{workflow_id}"


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def notify(event) -> None:
    """Push `event` to the channel layer when it spans processes (Redis); else nothing to do."""
    if not getattr(settings, "REDIS_URL", None):
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from engine.models import Run

        layer = get_channel_layer()
        workflow_id = Run.objects.filter(pk=event.run_id).values_list("workflow_id", flat=True).first()
        message = {"type": "run.event", "event": event.to_message()}
        async_to_sync(layer.group_send)(run_group(event.run_id), message)
        if workflow_id is not None:
            async_to_sync(layer.group_send)(workflow_group(workflow_id), message)
    except Exception:  # the row is stored; consumers will still find it
        log.exception("could not push event %s to the channel layer", event.pk)
