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


def notify(message: dict, run_id: int, workflow_id: int) -> None:
    """Push `message` (a `StepEvent.to_message()`) to the groups of run `run_id` and of workflow
    `workflow_id` when the channel layer spans processes (Redis); else nothing to do."""
    if not getattr(settings, "REDIS_URL", None):
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        envelope = {"type": "run.event", "event": message}
        async_to_sync(layer.group_send)(run_group(run_id), envelope)
        async_to_sync(layer.group_send)(workflow_group(workflow_id), envelope)
    except Exception:  # the row is stored; consumers will still find it
        log.exception("could not push event %s to the channel layer", message.get("event_id"))


def step_output(step, stdout: str, stderr: str, truncated: bool = False) -> None:
    """Append a live output event of running step `step` (a StepRun): the text it printed since
    the previous one (engine/live_output.py). Sent to clients as {"type": "step.output", ...,
    "data": {"live": true, "stdout": ..., "stderr": ..., "truncated": bool}}; the step's
    record keeps the whole output once it ends."""
    from engine.models import StepEvent

    data = {"live": True, "stdout": stdout, "stderr": stderr}
    if truncated:
        data["truncated"] = True
    event = StepEvent.objects.create(run_id=step.run_id, step_id=step.pk, node_id=step.node_id,
                                     item_index=step.item_index, attempt=step.attempt,
                                     status="running", data=data)
    notify(event.to_message(), run_id=step.run_id, workflow_id=step.run.workflow_id)
