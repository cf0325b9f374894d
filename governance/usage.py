"""Metering: one `Usage` row per sandbox execution, and the totals the usage API and page show.

session_s runs from the moment the sandbox is requested to its release (measured by the Python
step around the sandbox call); cpu_s and peak_memory_bytes are null when the driver does not tell;
egress_bytes is the sum of the result's `egress` entries (0 when there are none). Cost is
session_s x STEPWELL_PRICE_PER_SESSION_SECOND, with no minimum billed time.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Count, Sum
from django.utils import timezone


class Usage(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    workflow_id = models.BigIntegerField(null=True, db_index=True)
    run_id = models.BigIntegerField(null=True, db_index=True)
    step_id = models.BigIntegerField(null=True, unique=True)
    day = models.DateField(db_index=True)
    created = models.DateTimeField(default=timezone.now)
    session_s = models.FloatField()
    cpu_s = models.FloatField(null=True)
    peak_memory_bytes = models.BigIntegerField(null=True)
    egress_bytes = models.BigIntegerField(default=0)
    driver = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-id"]


def _number(meta: dict, *keys):
    for k in keys:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
    return None


def egress_bytes(meta: dict) -> int:
    total = 0
    for entry in meta.get("egress") or []:
        if isinstance(entry, dict):   # the egress proxy's records: bytes_out and bytes_in
            keys = ("bytes_out", "bytes_in") if ("bytes_out" in entry or "bytes_in" in entry) else ("bytes",)
            for k in keys:
                v = entry.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    total += v
    return total


def record(*, meta: dict, user_id, workflow_id, run_id, step_id) -> Usage | None:
    """The usage row of one execution, from the step's sandbox metadata (None without session_s)."""
    session = _number(meta, "session_s")
    if session is None:
        return None
    cpu = _number(meta, "cpu_s")
    if cpu is None and _number(meta, "cpu_ms", "cpu_time_ms") is not None:
        cpu = _number(meta, "cpu_ms", "cpu_time_ms") / 1000
    now = timezone.now()
    return Usage.objects.create(
        user_id=user_id, workflow_id=workflow_id, run_id=run_id, step_id=step_id, day=now.date(), created=now,
        session_s=float(session), cpu_s=cpu,
        peak_memory_bytes=_number(meta, "peak_memory_bytes", "memory_max_usage_bytes", "memory_peak_bytes"),
        egress_bytes=egress_bytes(meta), driver=str(meta.get("driver") or "")[:32])


def price() -> Decimal:
    return settings.STEPWELL_PRICE_PER_SESSION_SECOND


GROUPS = {"workflow": "workflow_id", "user": "user__username", "day": "day"}


def totals(qs, group_by: str) -> dict:
    """{"groups": [...], "total": {...}} for `qs` grouped by workflow, user or day."""
    field = GROUPS[group_by]
    p = price()

    def shape(row: dict) -> dict:
        session = row["session_s"] or 0.0
        return {"executions": row["executions"], "session_s": round(session, 6),
                "cpu_s": None if row["cpu_s"] is None else round(row["cpu_s"], 6),
                "peak_memory_bytes": row["peak_memory_bytes"], "egress_bytes": row["egress_bytes"] or 0,
                "cost": format((Decimal(repr(session)) * p).quantize(Decimal("1e-12")).normalize(), "f")}

    agg = dict(executions=Count("id"), session_s=Sum("session_s"), cpu_s=Sum("cpu_s"),
               peak_memory_bytes=models.Max("peak_memory_bytes"), egress_bytes=Sum("egress_bytes"))
    groups = []
    for row in qs.values(field).annotate(**agg).order_by(field):
        key = row[field]
        groups.append({"key": key.isoformat() if hasattr(key, "isoformat") else key, **shape(row)})
    return {"group_by": group_by, "price_per_session_second": str(p), "groups": groups,
            "total": shape(qs.aggregate(**agg))}
