"""Rate limits kept in Django's cache: sign-in failures (per username and per client address),
the REST API (per user) and hooks (per token).

One counting rule for all of them: a fixed window of `window_s` seconds per (scope, key), counted
with the cache's atomic `add` + `incr`, so every process that shares the cache (Redis when
REDIS_URL is set) shares the count. Rates come from settings (see README, "Configuration").
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from rest_framework.throttling import BaseThrottle

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """`"10/5m"` → (10, 300): at most 10 in any window of 5 minutes. Units s, m, h, d (or a
    word starting with one: `"600/min"`); a missing number means 1."""
    count, _, period = rate.strip().partition("/")
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period[len(digits):].strip()[:1].lower()
    if not count.strip().isdigit() or int(count) < 1 or unit not in _UNITS:
        raise ValueError(f"a rate is like '10/5m' or '600/min', got {rate!r}")
    return int(count), (int(digits) if digits else 1) * _UNITS[unit]


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` hits per `window_s` seconds for each key of one scope."""

    scope: str
    limit: int
    window_s: int

    @classmethod
    def from_rate(cls, scope: str, rate: str) -> "RateLimit":
        limit, window = parse_rate(rate)
        return cls(scope, limit, window)

    def _cache_key(self, key: str) -> tuple[str, float]:
        now = time.time()
        window = math.floor(now / self.window_s)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"stepwell:throttle:{self.scope}:{digest}:{window}", (window + 1) * self.window_s - now

    def hit(self, key: str) -> float | None:
        """Count one hit. None when it is allowed, else the seconds until the window ends."""
        name, left = self._cache_key(key)
        cache.add(name, 0, timeout=self.window_s + 1)
        try:
            count = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.add(name, 1, timeout=self.window_s + 1)
            count = 1
        return None if count <= self.limit else max(1.0, left)

    def blocked(self, key: str) -> float | None:
        """Without counting: None when a hit now would be allowed, else the seconds to wait."""
        name, left = self._cache_key(key)
        return None if (cache.get(name) or 0) < self.limit else max(1.0, left)


# --- Hooks (per token) --------------------------------------------------------------------------

def hook_limit() -> RateLimit:
    return RateLimit.from_rate("hook", settings.STEPWELL_HOOK_RATE)


def throttle_hook(token: str) -> float | None:
    """Count one call of the hook `token`: None when it may go on, else the seconds the caller
    should wait (answer 429 with `Retry-After`). Call it before any other work for the request."""
    return hook_limit().hit(token)


# --- REST API (per user) ------------------------------------------------------------------------

class UserRateThrottle(BaseThrottle):
    """DRF throttle: each signed-in user gets STEPWELL_API_RATE requests; anonymous requests are
    left to authentication (they get 401/403 anyway)."""

    def __init__(self):
        self.wait_s: float | None = None

    def allow_request(self, request, view):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        self.wait_s = RateLimit.from_rate("api", settings.STEPWELL_API_RATE).hit(str(user.pk))
        return self.wait_s is None

    def wait(self):
        return self.wait_s


# --- Sign-in (per username and per client address) ----------------------------------------------

def _login_limits() -> list[RateLimit]:
    rate = settings.STEPWELL_LOGIN_FAILURE_RATE
    return [RateLimit.from_rate("login-user", rate), RateLimit.from_rate("login-ip", rate)]


def client_address(request) -> str:
    return (request.META.get("REMOTE_ADDR") if request is not None else None) or "unknown"


def _keys(request, username) -> tuple[str, str]:
    return str(username or "").strip().lower(), client_address(request)


def login_blocked(request, username) -> float | None:
    """Seconds to wait when `username` or the client's address has had too many failed sign-ins."""
    waits = [w for limit, key in zip(_login_limits(), _keys(request, username))
             if (w := limit.blocked(key)) is not None]
    return max(waits) if waits else None


class LoginThrottleBackend:
    """First in AUTHENTICATION_BACKENDS: refuses every sign-in attempt (right password or not) for
    a username or a client address that has had too many failures, before a password is checked.
    Covers the sign-in page and the admin's."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and login_blocked(request, username) is not None:
            if request is not None:
                request.login_throttled = True
            raise PermissionDenied("too many failed sign-ins")
        return None

    def get_user(self, user_id):
        """Sessions that name this backend (Django's `force_login` picks the first backend) load
        their user as the model backend does."""
        from django.contrib.auth.backends import ModelBackend

        return ModelBackend().get_user(user_id)


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    if getattr(request, "login_throttled", False):
        return  # refused by the throttle, not a new wrong guess
    for limit, key in zip(_login_limits(), _keys(request, credentials.get("username"))):
        limit.hit(key)
