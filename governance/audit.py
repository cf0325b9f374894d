"""The audit log's models and its one way in: `append()`, which extends the hash chain.

Each `AuditEvent` stores the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8) and the
previous event's hash. The event id is the chain position, assigned under a lock on the single
`AuditChainHead` row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions take
the database write lock), so two processes cannot fork the chain. Events are append-only: saving
an existing event, deleting one, or QuerySet.update()/delete() raise `AppendOnlyError`. The only
deletion is retention pruning (governance.retention), which writes a checkpoint event.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any, Iterable

from django.db import models, transaction
from django.utils import timezone


class AppendOnlyError(Exception):
    """An audit event was about to be changed or deleted."""


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str)


def _portable(value: Any) -> Any:
    """Floats that a JSON column would not give back as written: NaN and infinities become
    strings, integral floats too large for exact output become ints (PostgreSQL's jsonb prints
    1e16 as 10000000000000000)."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer() and abs(value) >= 1e16:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    return value


def plain(data: Any) -> Any:
    """`data` as it reads back from a JSON column (what is hashed is exactly what is stored)."""
    return _portable(json.loads(json.dumps(data, default=str, allow_nan=True)))


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events cannot be updated")

    def delete(self):
        raise AppendOnlyError("audit events cannot be deleted (retention pruning is governance.retention)")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("audit events cannot be updated")

    update_or_create = update


class AuditEvent(models.Model):
    """One recorded fact. `id` is its position in the chain; ids of other objects are plain ids."""

    id = models.BigIntegerField(primary_key=True)
    created = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=200, blank=True, db_index=True)
    workflow_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    step_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind}"

    def canonical(self) -> dict:
        created = self.created
        return {
            "id": self.id, "kind": self.kind, "created": created.isoformat() if isinstance(created, datetime) else created,
            "actor": self.actor, "workflow": self.workflow_id, "run": self.run_id, "step": self.step_id,
            "payload": self.payload, "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.canonical()).encode("utf-8")).hexdigest()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"audit event #{self.id} cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"audit event #{self.id} cannot be deleted")


class AuditChainHead(models.Model):
    """The single row (pk 1) holding the last event's id and hash; locked by every append."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, blank=True)


def _locked_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    last = AuditEvent.objects.order_by("-id").first()
    AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": last.id if last else 0,
                                                         "hash": last.hash if last else ""})
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _chained(head: AuditChainHead, event: AuditEvent) -> AuditEvent:
    event.id = head.seq + 1
    event.prev_hash = head.hash
    event.hash = event.compute_hash()
    head.seq, head.hash = event.id, event.hash
    return event


def _new(kind: str, actor: str, workflow: int | None, run: int | None, step: int | None,
         payload: dict | None, created: datetime | None) -> AuditEvent:
    return AuditEvent(created=created or timezone.now(), kind=kind, actor=(actor or "")[:200],
                      workflow_id=workflow, run_id=run, step_id=step, payload=plain(payload or {}))


def append(kind: str, *, actor: str = "", workflow: int | None = None, run: int | None = None,
           step: int | None = None, payload: dict | None = None) -> AuditEvent:
    """Add one event at the end of the chain and return it (inside the caller's transaction)."""
    with transaction.atomic():
        head = _locked_head()
        event = _chained(head, _new(kind, actor, workflow, run, step, payload, None))
        event.save()
        head.save(update_fields=["seq", "hash"])
    return event


def append_many(rows: Iterable[dict], batch_size: int = 2000) -> int:
    """Append many events at once (imports, tests): hashes chained in a loop, rows bulk-inserted.

    Each row is the keyword arguments of `append` (kind, actor, workflow, run, step, payload) and
    may give `created`. Returns how many were written.
    """
    count = 0
    with transaction.atomic():
        head = _locked_head()
        batch: list[AuditEvent] = []
        for row in rows:
            batch.append(_chained(head, _new(row["kind"], row.get("actor", ""), row.get("workflow"),
                                             row.get("run"), row.get("step"), row.get("payload"),
                                             row.get("created"))))
            if len(batch) >= batch_size:
                AuditEvent.objects.bulk_create(batch)
                count += len(batch)
                batch = []
        if batch:
            AuditEvent.objects.bulk_create(batch)
            count += len(batch)
        head.save(update_fields=["seq", "hash"])
    return count
