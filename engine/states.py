"""`begin` and `transition`, the only functions that set the status of a run or a step
(the statuses themselves and the allowed moves are in `engine.status`).

Every status change of a `Run` or a `StepRun` goes through `transition()`: it checks the
from → to rule, updates the row only if it is still in the expected status (a conditional
UPDATE, so two processes cannot both move the same record) and appends one `StepEvent`.
Records in a terminal status never change again.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from engine.events import notify
from engine.models import Run, StepEvent
from engine.status import ALLOWED, TERMINAL, Status, TransitionError, sources


def _append_event(record, to: Status, data: dict | None):
    """The StepEvent recording that `record` (a Run or StepRun) entered status `to`."""
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


def _announce(record, event) -> None:
    """Push `event` to listeners of the record's run and workflow."""
    run = record if isinstance(record, Run) else record.run
    notify(event.to_message(), run_id=run.pk, workflow_id=run.workflow_id)


def begin(model, to: str = Status.QUEUED, data: dict | None = None, **fields):
    """Create a record (Run or StepRun) in its initial status, `queued` (or `running` / `skipped`
    for a step that starts or is skipped at once), and append its first StepEvent, atomically."""
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
    _announce(record, event)
    return record


def transition(record, to: str, *, expect: str | tuple[str, ...] | None = None, data: dict | None = None,
               **fields) -> bool:
    """Move `record` (a Run or StepRun) to status `to`, also setting `fields`; append a StepEvent.

    `expect` restricts the from-status (default: any status that allows `to`). Returns False,
    changing nothing, when the stored row is no longer in an expected status (someone else moved
    it first, e.g. a cancel racing a finish). `record` is updated in memory on success.

    :raises TransitionError: `to` is not reachable from any expected status.
    """
    to = Status(to)
    froms = {Status(f) for f in sources(ALLOWED, to, expect)}
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
    _announce(record, event)
    return True
