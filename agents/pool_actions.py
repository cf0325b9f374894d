"""Changes of session pools (staff only), each one an audit event like other configuration
changes: `session_pool.created`, `session_pool.changed` (with the changed fields) and
`session_pool.deleted`. The admin and the pools API call these."""
from __future__ import annotations

from django.db import transaction

from agents.sessionpools import SessionPool
from governance.actions import actor_of, record

FIELDS = ("name", "max_sessions", "memory_mib", "timeout_s", "allowed_hosts", "cooldown_s", "runtime")


def values(pool: SessionPool) -> dict:
    """The pool's settings as audited (`runtime`: the runtime's id, or None for the active one)."""
    return {f: pool.runtime_id if f == "runtime" else getattr(pool, f) for f in FIELDS}


@transaction.atomic
def save(pool: SessionPool, user, before: dict | None = None) -> SessionPool:
    """Save `pool` (new when it has no pk); `before`: its values before the change."""
    created = pool.pk is None
    pool.full_clean()
    pool.save()
    if created:
        record("session_pool.created", actor=actor_of(user), payload=values(pool))
    else:
        now = values(pool)
        changed = {k: {"from": (before or {}).get(k), "to": v} for k, v in now.items() if (before or {}).get(k) != v}
        if changed:
            record("session_pool.changed", actor=actor_of(user), payload={"name": pool.name, "changed": changed})
    return pool


@transaction.atomic
def delete(pool: SessionPool, user) -> None:
    payload = values(pool)
    pool.delete()
    record("session_pool.deleted", actor=actor_of(user), payload=payload)
