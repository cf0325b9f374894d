"""State changes of API keys, each one an audit event: create, rename, revoke, and the record of
a refused Bearer key. Views and the management command call these; nothing else writes keys."""
from __future__ import annotations

import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.keys import Refusal, digest, new_key
from agents.models import NAME_MAX, ApiKey
from governance.actions import actor_of, record

NAME_RE = re.compile(r"[\w .@+-]+")
MAX_EXPIRES_DAYS = 3650


class KeyInvalid(ValueError):
    """A request that cannot be applied; `field` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_name(user, name, exclude_pk=None) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise KeyInvalid("name", f"a key name is 1 to {NAME_MAX} letters, digits, spaces or . _ @ + -")
    clash = ApiKey.objects.filter(user=user, name=name, revoked_at__isnull=True).exclude(pk=exclude_pk)
    if clash.exists():
        raise KeyInvalid("name", f"you already have an active key named {name!r}")
    return name


def _payload(key: ApiKey, **extra) -> dict:
    return {"name": key.name, "prefix": key.prefix, "owner": key.user.get_username(), "key_id": key.pk, **extra}


@transaction.atomic
def create(user, name: str, expires_days: int | None = None, actor: str | None = None) -> tuple[ApiKey, str]:
    """(the new key's row, the plain key: shown once, never stored). `actor` defaults to the user."""
    name = check_name(user, name)
    if expires_days is not None and not (isinstance(expires_days, int) and 1 <= expires_days <= MAX_EXPIRES_DAYS):
        raise KeyInvalid("expires_days", f"expires_days is a whole number of days from 1 to {MAX_EXPIRES_DAYS}")
    prefix, plain = new_key()
    now = timezone.now()
    try:
        with transaction.atomic():
            key = ApiKey.objects.create(user=user, name=name, prefix=prefix, key_hash=digest(plain), created=now,
                                        expires_at=now + timedelta(days=expires_days) if expires_days else None)
    except IntegrityError:   # the same name made by a concurrent request a moment ago
        raise KeyInvalid("name", f"you already have an active key named {name!r}") from None
    record("api_key.created", actor=actor if actor is not None else actor_of(user),
           payload=_payload(key, expires_at=key.expires_at.isoformat() if key.expires_at else None))
    return key, plain


@transaction.atomic
def rename(key: ApiKey, name: str, actor_user) -> ApiKey:
    name = check_name(key.user, name, exclude_pk=key.pk)
    old, key.name = key.name, name
    try:
        with transaction.atomic():
            key.save(update_fields=["name"])
    except IntegrityError:
        key.name = old
        raise KeyInvalid("name", f"you already have an active key named {name!r}") from None
    record("api_key.renamed", actor=actor_of(actor_user), payload=_payload(key, old_name=old))
    return key


@transaction.atomic
def revoke(key: ApiKey, actor_user) -> ApiKey:
    """Revoke `key` (idempotent: an already revoked key keeps its first revocation time)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record("api_key.revoked", actor=actor_of(actor_user), payload=_payload(key))
    return key


def record_refusal(refusal: Refusal, address: str = "") -> None:
    """The `api_key.auth_failed` event: the key's actor when the prefix named a key (a revoked or
    expired key in use, or a wrong secret), never any part of the secret."""
    key = refusal.key
    payload = {"reason": refusal.reason, "address": address}
    if key is not None:
        payload.update(_payload(key))
    record("api_key.auth_failed", actor=key.actor if key is not None else "", payload=payload)
