"""Checking and pruning the audit chain.

`verify()` walks every event in id order (streamed) and recomputes its hash; the first event's
`prev_hash` must be "" or, after pruning, the hash the latest checkpoint says it continues from.
`prune()` is the only deletion of audit events: it removes those older than the retention and
appends a `checkpoint` event recording the hash the remaining chain continues from.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from governance.audit import AuditChainHead, AuditEvent, _locked_head, append


@dataclass
class Verdict:
    verified: int
    bad_event: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def verify(chunk_size: int = 2000) -> Verdict:
    checkpoint = AuditEvent.objects.filter(kind="checkpoint").order_by("-id").first()
    expected_prev = str(checkpoint.payload.get("continues_from", "")) if checkpoint else ""
    count = 0
    last = None
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size):
        if event.prev_hash != expected_prev:
            return Verdict(count, event.id, f"event #{event.id} does not follow the previous event "
                                            f"(prev_hash {event.prev_hash[:12]}…, expected {expected_prev[:12]}…)")
        if event.compute_hash() != event.hash:
            return Verdict(count, event.id, f"event #{event.id} ({event.kind}) does not match its hash")
        if last is not None and event.id != last.id + 1:
            return Verdict(count, event.id, f"event #{event.id} follows #{last.id}: events are missing")
        expected_prev = event.hash
        last = event
        count += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and last is not None and (head.seq, head.hash) != (last.id, last.hash):
        return Verdict(count, head.seq, f"the chain head names event #{head.seq}, the last event is #{last.id}")
    return Verdict(count)


def prune(retention_days: int | None = None, now=None) -> int:
    """Delete events older than the retention; append a checkpoint. Returns how many were deleted."""
    days = retention_days if retention_days is not None else settings.STEPWELL_AUDIT_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    with transaction.atomic():
        _locked_head()  # no append while the start of the chain moves
        last_old = AuditEvent.objects.filter(created__lt=cutoff).order_by("-id").first()
        if last_old is None:
            return 0
        first = AuditEvent.objects.order_by("id").values_list("id", flat=True).first()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id <= %s", [last_old.id])
            deleted = cursor.rowcount
        append("checkpoint", actor="system", payload={
            "continues_from": last_old.hash, "pruned_from": first, "pruned_through": last_old.id,
            "deleted": deleted, "retention_days": days, "cutoff": cutoff.isoformat(),
        })
    return deleted


_PRUNE_EVERY_S = 3600.0
_last_prune: float | None = None


def prune_if_due(now_monotonic: float | None = None) -> int:
    """What the worker's periodic loop calls, at most once an hour per process: the policy's output
    retention, then the audit retention."""
    import time

    global _last_prune
    clock = time.monotonic() if now_monotonic is None else now_monotonic
    if _last_prune is not None and clock - _last_prune < _PRUNE_EVERY_S:
        return 0
    _last_prune = clock
    from governance.output_retention import prune_outputs

    prune_outputs()
    return prune()
