"""Run and step statuses (a closed set) and `transition`, the one function that changes them.

Every status change of a `Run` or a `StepRun` goes through `transition()`: it checks the
from → to rule, updates the row only if it is still in the expected status (a conditional
UPDATE, so two processes cannot both move the same record) and appends one `StepEvent`.
Records in a terminal status never change again.
"""
from __future__ import annotations

from django.db import models, transaction
from django.utils import timezone


class Status(models.TextChoices):
    """Closed set of statuses shared by runs and steps. Stored values are never renamed."""

    QUEUED = "queued", "Queued"            # created, waiting for a worker (or for its inputs)
    RUNNING = "running", "Running"         # a worker is executing it
    SUCCEEDED = "succeeded", "Succeeded"   # finished normally
    FAILED = "failed", "Failed"            # an error (step error, mapping error, worker lost)
    CANCELLED = "cancelled", "Cancelled"   # stopped on request
    TIMED_OUT = "timed_out", "Timed out"   # a time limit was reached
    SKIPPED = "skipped", "Skipped"         # steps only: on a branch that was not taken


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT, Status.SKIPPED})

# from-status -> statuses it may move to
ALLOWED: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.SKIPPED, Status.FAILED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT}),
}


class TransitionError(RuntimeError):
    """The record is not in a status from which the requested move is allowed."""


def is_terminal(status: str) -> bool:
    return status in TERMINAL



def _append_event(record, to: Status, data: dict | None):
    """The StepEvent recording that `record` (a Run or StepRun) entered status `to`."""
    from engine.models import Run, StepEvent

    is_run = isinstance(record, Run)
    return StepEvent.objects.create(
        run_id=record.pk if is_run else record.run_id,
        step_id=None if is_run else record.pk,
        node_id="" if is_run else record.node_id,
        item_index=None if is_run else record.item_index,
        attempt=None if is_run else record.attempt,
        status=to,
        data=data or {},
    )

def begin(model, to: str = Status.QUEUED, data: dict | None = None, **fields):
    """Create a record (Run or StepRun) in its initial status, `queued` (or `running` / `skipped`
    for a step that starts or is skipped at once), and append its first StepEvent, atomically."""
    from engine.events import notify

    to = Status(to)
    if to not in (Status.QUEUED, Status.RUNNING, Status.SKIPPED):
        raise TransitionError(f"a record cannot begin as {to.value!r}")
    now = timezone.now()
    if to == Status.RUNNING:
        fields.setdefault("started", now)
    if to == Status.SKIPPED:
        fields.setdefault("finished", now)
    with transaction.atomic():
        record = model.objects.create(status=to, **fields)
        event = _append_event(record, to, data)
    notify(event)
    return record


def transition(record, to: str, *, expect: str | tuple[str, ...] | None = None, data: dict | None = None,
               **fields) -> bool:
    """Move `record` (a Run or StepRun) to status `to`, also setting `fields`; append a StepEvent.

    `expect` restricts the from-status (default: any status that allows `to`). Returns False,
    changing nothing, when the stored row is no longer in an expected status (someone else moved
    it first, e.g. a cancel racing a finish). `record` is updated in memory on success.

    :raises TransitionError: `to` is not reachable from any expected status.
    """
    from engine.events import notify

    to = Status(to)
    froms = {expect} if isinstance(expect, str) else set(expect or ALLOWED)
    froms = {Status(f) for f in froms if to in ALLOWED.get(f, ())}
    if not froms:
        raise TransitionError(f"no transition to {to.value!r} from {expect!r}")
    now = timezone.now()
    if to == Status.RUNNING:
        fields.setdefault("started", now)
    if to in TERMINAL:
        fields.setdefault("finished", now)
    model = type(record)
    with transaction.atomic():
        n = model.objects.filter(pk=record.pk, status__in=froms).update(status=to, **fields)
        if not n:
            return False
        event = _append_event(record, to, data)
    record.status = to
    for k, v in fields.items():
        setattr(record, k, v)
    notify(event)
    return True
