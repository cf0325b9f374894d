"""Per-key quotas, for the session API to call: concurrent sessions, executions per minute and
session-seconds per day. Each check raises `QuotaExceeded` (answer 429 with its Retry-After:
`quota_response` for DRF views, `quota_json` for plain ones) or returns None.

- `check_sessions(key, open_sessions)`: the caller counts the key's open sessions.
- `hit_execution(key)` / `ExecutionThrottle`: one execution, counted in designer.throttling's
  fixed one-minute window per key (the cache, shared across processes with Redis).
- `record_usage(key, meta)` writes the governance usage row of a session (governance.usage)
  tied to the key; `check_session_seconds(key)` sums today's (UTC) rows of that key.
"""
from __future__ import annotations

import math
from datetime import datetime, time, timedelta, timezone as dt_timezone

from django.db.models import Sum
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from agents.models import ApiKey, KeyUsage
from designer.throttling import RateLimit

SESSION_RETRY_S = 5   # Retry-After when every session slot of a key is taken


class QuotaExceeded(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


def check_sessions(key: ApiKey, open_sessions: int) -> None:
    if open_sessions >= key.max_concurrent_sessions:
        raise QuotaExceeded(f"key {key.name!r} already has {open_sessions} open sessions "
                            f"(its limit is {key.max_concurrent_sessions})", SESSION_RETRY_S)


def execution_limit(key: ApiKey) -> RateLimit:
    return RateLimit("api-key-exec", max(1, key.executions_per_minute), 60)


def hit_execution(key: ApiKey) -> None:
    """Count one execution of `key`; raises when it is over its executions per minute."""
    if key.executions_per_minute < 1:
        raise QuotaExceeded(f"key {key.name!r} may not execute code", 60)
    wait = execution_limit(key).hit(key.prefix)   # the prefix: unique, never reused
    if wait is not None:
        raise QuotaExceeded(f"key {key.name!r} is over its {key.executions_per_minute} executions per minute", wait)


def _day_bounds(now: datetime) -> tuple[datetime, float]:
    day = now.astimezone(dt_timezone.utc).date()
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=dt_timezone.utc)
    return day, (next_midnight - now).total_seconds()


def session_seconds_today(key: ApiKey, now: datetime | None = None) -> float:
    day, _ = _day_bounds(now or timezone.now())
    from governance.usage import Usage

    total = Usage.objects.filter(api_key_link__key=key, day=day).aggregate(s=Sum("session_s"))["s"]
    return float(total or 0.0)


def check_session_seconds(key: ApiKey, now: datetime | None = None) -> None:
    """Raises when the key has spent its session-seconds of today (UTC); Retry-After: midnight."""
    now = now or timezone.now()
    spent = session_seconds_today(key, now)
    if spent >= key.session_seconds_per_day:
        raise QuotaExceeded(f"key {key.name!r} has used its {key.session_seconds_per_day} session-seconds "
                            f"of today (UTC)", _day_bounds(now)[1])


def record_usage(key: ApiKey, meta: dict, workflow_id=None, run_id=None):
    """The governance usage row of one session or execution spent through `key` (None when
    `meta` carries no session_s), tied to the key for `check_session_seconds`."""
    from governance.usage import record

    usage = record(meta=meta, user_id=key.user_id, workflow_id=workflow_id, run_id=run_id, step_id=None)
    if usage is not None:
        KeyUsage.objects.create(usage=usage, key=key)
    return usage


def quota_response(exc: QuotaExceeded):
    """The 429 of a DRF view, in the API's error shape, with Retry-After."""
    from designer.api.errors import error_response

    response = error_response(429, str(exc))
    response["Retry-After"] = str(exc.retry_after)
    return response


def quota_json(exc: QuotaExceeded):
    """The same 429 for a plain Django view."""
    from designer.api.errors import error_json

    response = error_json(429, str(exc))
    response["Retry-After"] = str(exc.retry_after)
    return response


class ExecutionThrottle(BaseThrottle):
    """DRF throttle for views that execute code: each request made with a key counts one
    execution of it (429 with Retry-After through the API's exception handler); requests without
    a key are left to the other throttles."""

    def __init__(self):
        self.wait_s: float | None = None

    def allow_request(self, request, view):
        key = getattr(request, "auth", None)
        if not isinstance(key, ApiKey):
            return True
        try:
            hit_execution(key)
        except QuotaExceeded as exc:
            self.wait_s = exc.retry_after
            return False
        return True

    def wait(self):
        return self.wait_s
