"""How the rest of Stepwell reports to governance: `record()` and the helpers that shape payloads.

Callers pass plain values (ids, names, strings); nothing here imports the designer, the engine's
runner or the runtimes app.
"""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from governance.audit import AuditEvent, append


def record(kind: str, *, actor: str = "", workflow: int | None = None, run: int | None = None,
           step: int | None = None, payload: dict | None = None) -> AuditEvent:
    """Append one audit event (inside the caller's transaction, if any) and return it."""
    return append(kind, actor=actor, workflow=workflow, run=run, step=step, payload=payload)


def actor_of(user) -> str:
    """The actor string for a Django user (its user name), or "" for nobody."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return user.get_username()


def trim(value: Any, limit: int | None = None) -> Any:
    """`value` unchanged when its JSON is within the limit, else a marker with a cut preview."""
    limit = limit or settings.STEPWELL_AUDIT_MAX_FIELD_BYTES
    if isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) <= limit:
            return value
        return {"truncated": True, "bytes": len(data), "preview": data[:limit].decode("utf-8", "ignore")}
    text = json.dumps(value, ensure_ascii=False, default=str)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return value
    return {"truncated": True, "bytes": len(data), "preview": data[:limit].decode("utf-8", "ignore")}
