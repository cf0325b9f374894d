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
    """The actor string for a Django user (its user name, or `user/key name` when the request was
    authenticated by an API key: agents.auth sets `audit_actor`), or "" for nobody."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return getattr(user, "audit_actor", "") or user.get_username()


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


_META_KEYS = {  # execution metadata worth keeping, under the names the audit event uses
    "driver": ("driver",), "accel": ("accel",), "guest_image": ("image_sha256", "image_hash", "image_id"),
    "runtime_id": ("runtime_id",), "runtime_lock_hash": ("lock_hash", "runtime_lock_hash", "lock_sha256"),
    "execution_id": ("execution_id",),
}


def record_execution(*, code: str, inputs: Any, output: Any, stdout: str, stderr: str, status: str,
                     error: str = "", sandbox: dict | None = None, workflow: int | None = None,
                     version: int | None = None, run: int | None = None, step: int | None = None,
                     node_id: str = "", actor: str = "", trigger: str = "") -> AuditEvent:
    """The `execution` event of one sandbox execution (called by the engine after each one)."""
    import hashlib

    meta = dict(sandbox or {})
    payload: dict[str, Any] = {
        "node_id": node_id, "version": version, "trigger": trigger,
        "code_sha256": hashlib.sha256((code or "").encode("utf-8")).hexdigest(),
        "inputs": trim(inputs), "output": trim(output), "stdout": trim(stdout or ""), "stderr": trim(stderr or ""),
        "status": status, "error": trim(error or ""), "exit_code": meta.get("exit_code"),
        "duration_ms": meta.get("duration_ms"), "sandbox_status": meta.get("status"),
        "limits": {"timeout_s": meta.get("timeout_s"), "memory_mib": meta.get("memory_mib")},
        "egress": meta.get("egress") if isinstance(meta.get("egress"), list) else [],
    }
    if settings.STEPWELL_AUDIT_KEEP_CODE == "full":
        payload["code"] = code or ""
    for name, keys in _META_KEYS.items():
        payload[name] = next((meta[k] for k in keys if meta.get(k) not in (None, "")), None)
    if payload["runtime_id"] is not None and payload["runtime_lock_hash"] is None:
        payload["runtime_lock_hash"] = _lock_hash(payload["runtime_id"])
    return record("execution", actor=actor, workflow=workflow, run=run, step=step, payload=payload)


_lock_hashes: dict[int, str] = {}   # runtime id -> lock hash (a built runtime's never changes)


def _lock_hash(runtime_id) -> str | None:
    """The lock hash of a package runtime, looked up by id (the runtimes app, when installed)
    once per process: every execution records it."""
    from django.apps import apps

    try:
        rid = int(runtime_id)
        if rid not in _lock_hashes:
            runtime = apps.get_model("runtimes", "Runtime")
            found = runtime.objects.filter(pk=rid).values_list("lock_hash", flat=True).first()
            if not found:
                return None   # not built (yet): asked again next time
            _lock_hashes[rid] = found
        return _lock_hashes[rid]
    except (LookupError, TypeError, ValueError):
        return None
