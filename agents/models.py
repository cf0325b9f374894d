"""The `ApiKey` model (one row per key, only its SHA-256 kept) and `KeyUsage`, which ties a
governance usage row to the key it was spent by (for the session-seconds quota)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

NAME_MAX = 64
# Quota defaults of a new key; staff change them per key in the admin.
DEFAULT_MAX_SESSIONS = 2
DEFAULT_EXECUTIONS_PER_MINUTE = 60
DEFAULT_SESSION_SECONDS_PER_DAY = 3600
STATUSES = [("active", "active"), ("expired", "expired"), ("revoked", "revoked")]   # ApiKey.status()


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=NAME_MAX)
    prefix = models.CharField(max_length=16, unique=True, help_text="shown in lists, and how a key is looked up")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the whole key")
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    max_concurrent_sessions = models.PositiveIntegerField(default=DEFAULT_MAX_SESSIONS)
    executions_per_minute = models.PositiveIntegerField(default=DEFAULT_EXECUTIONS_PER_MINUTE)
    session_seconds_per_day = models.PositiveIntegerField(default=DEFAULT_SESSION_SECONDS_PER_DAY)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], condition=Q(revoked_at__isnull=True),
                                               name="agents_apikey_active_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def actor(self) -> str:
        """The audit actor of what is done with this key: `owner/key name` (user names cannot
        hold a slash, so the owner is unambiguous while the key's name is there as given)."""
        return f"{self.user.get_username()}/{self.name}"

    def status(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class KeyUsage(models.Model):
    """A governance usage row spent through a key (written by agents.quotas.record_usage)."""

    usage = models.OneToOneField("governance.Usage", on_delete=models.CASCADE, primary_key=True,
                                 related_name="api_key_link")
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_links")


from agents.sessionpools import PoolSession, SessionPool  # noqa: E402,F401 - the session API's models
