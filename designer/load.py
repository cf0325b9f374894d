"""What the deployment is carrying right now, for `/metrics` (Prometheus text format, via
prometheus-client) and the staff `/status/` page: runs by status, the queue (runs no worker has
started yet), the sandbox service's pool (size, ready, busy) and the executions metered so far.

`snapshot()` gathers it once; `metrics` and `status_page` only render it. `/metrics` is for staff
sessions or `Authorization: Bearer $STEPWELL_METRICS_TOKEN` (a scraper's token; unset means no
token is accepted).
"""
from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, Sum
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from designer.api.errors import error_json
from engine.models import Run
from engine.status import Status
from governance.usage import Usage
from sandbox.client import health as sandbox_health


def snapshot() -> dict:
    by_status = dict.fromkeys(Status.values, 0)
    for row in Run.objects.values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    queued = Run.objects.filter(status=Status.QUEUED)
    oldest = queued.order_by("created").values_list("created", flat=True).first()
    usage = Usage.objects.aggregate(n=Count("id"), session=Sum("session_s"), egress=Sum("egress_bytes"))
    return {
        "runs": by_status,
        "queue": {"depth": by_status[Status.QUEUED],
                  "oldest_s": round(time.time() - oldest.timestamp(), 3) if oldest else 0.0},
        "sandbox": sandbox_health(),
        "executions": {"count": usage["n"] or 0, "session_s": float(usage["session"] or 0.0),
                       "egress_bytes": int(usage["egress"] or 0)},
    }


class SnapshotCollector:
    """One scrape's metrics, from a snapshot taken for it."""

    def __init__(self, snap: dict):
        self.snap = snap

    def collect(self):
        s = self.snap
        runs = GaugeMetricFamily("stepwell_runs", "Runs by status", labels=["status"])
        for status, n in s["runs"].items():
            runs.add_metric([status], n)
        yield runs
        yield GaugeMetricFamily("stepwell_queue_depth", "Runs waiting for a worker", value=s["queue"]["depth"])
        yield GaugeMetricFamily("stepwell_queue_oldest_seconds", "Age of the oldest queued run",
                                value=s["queue"]["oldest_s"])
        sb = s["sandbox"]
        yield GaugeMetricFamily("stepwell_sandbox_up", "1 when the sandbox service answers and runs the "
                                "configured driver", value=1 if sb["available"] else 0)
        slots = GaugeMetricFamily("stepwell_sandbox_slots", "Warm sandbox pool slots", labels=["state"])
        for state in ("size", "ready", "busy"):
            slots.add_metric([state], sb["pool"][state])
        yield slots
        ex = s["executions"]
        yield CounterMetricFamily("stepwell_executions", "Sandbox executions metered", value=ex["count"])
        yield CounterMetricFamily("stepwell_execution_session_seconds", "Session-seconds metered",
                                  value=ex["session_s"])
        yield CounterMetricFamily("stepwell_egress_bytes", "Egress bytes of code steps", value=ex["egress_bytes"])


def _scraper(request) -> bool:
    token = settings.STEPWELL_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
def metrics(request):
    if not (_scraper(request) or (request.user.is_authenticated and request.user.is_staff)):
        return error_json(403, "metrics are for staff or a scraper with STEPWELL_METRICS_TOKEN")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot()))
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


@staff_member_required
@require_GET
def status_page(request):
    return render(request, "designer/status.html", {"s": snapshot()})
