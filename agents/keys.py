"""Making and checking key strings.

A key is `sw_<prefix>_<secret>`: a 12-hex-digit prefix (stored in clear, unique, shown in lists
and used to find the row) and 32 random bytes from `secrets` (43 URL-safe characters). Only the
SHA-256 of the whole key is stored and it is compared with `hmac.compare_digest`. A fast hash is
enough here, unlike for passwords: the secret has 256 bits of entropy, so no guessing attack on
a leaked hash is possible, and a slow hasher would add its full cost to every API request.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.utils import timezone

from agents.models import ApiKey

PREFIX_LEN = 12
KEY_RE = re.compile(r"sw_([0-9a-f]{%d})_([A-Za-z0-9_-]{20,200})" % PREFIX_LEN)
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
LAST_USED_EVERY_S = 60   # last_used_at is written at most this often per key


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """(prefix, whole key) of a fresh random key."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    return prefix, f"sw_{prefix}_{secrets.token_urlsafe(32)}"


@dataclass
class Refusal(Exception):
    """A presented key that does not authenticate: why (unknown, malformed, mismatch, revoked,
    expired), and the key row when the prefix named one."""

    reason: str
    key: ApiKey | None = None

    def __str__(self) -> str:
        return "Invalid, revoked or expired API key."


def verify(presented: str) -> ApiKey:
    """The active key `presented` is, or raises `Refusal`. Constant-time on the secret part."""
    m = KEY_RE.fullmatch(presented or "")
    if m is None:
        raise Refusal("malformed")
    row = ApiKey.objects.select_related("user").filter(prefix=m.group(1)).first()
    ok = hmac.compare_digest(digest(presented), row.key_hash if row is not None else _DUMMY_HASH)
    if row is None:
        raise Refusal("unknown")
    if not ok:
        raise Refusal("mismatch", row)
    status = row.status()
    if status != "active":
        raise Refusal(status, row)
    if not row.user.is_active:
        raise Refusal("user_inactive", row)
    now = timezone.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= LAST_USED_EVERY_S:
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
