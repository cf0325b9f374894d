"""Models of the code-interpreter session API (agents/sessions.py): `SessionPool`, a named set of
limits staff configure, and `PoolSession`, one caller's session in a pool.

A session is named by its caller with an `identifier`, but it belongs to (pool, owner,
identifier): the same identifier of another user is another session, with another random
`sandbox_key` (the sandbox's name of the VM that holds the session), so a VM is never shared
between owners. A session is open while `ended` is empty; one idle longer than its pool's
`cooldown_s` counts as ended (agents.sessions marks it so on the next call).
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

DEFAULT_POOL = "default"
IDENTIFIER_MAX = 128


def new_sandbox_key() -> str:
    return "sp-" + secrets.token_urlsafe(24)


class SessionPool(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    max_sessions = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)],
                                               help_text="open sessions the pool holds at most")
    memory_mib = models.PositiveIntegerField(default=512, validators=[MinValueValidator(128),
                                                                      MaxValueValidator(8192)])
    timeout_s = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1), MaxValueValidator(600)],
                                            help_text="default time limit of one execution (seconds)")
    allowed_hosts = models.JSONField(default=list, blank=True,
                                     help_text="hosts the code may reach (host, host:port, *.domain); empty: none")
    cooldown_s = models.PositiveIntegerField(default=300, validators=[MinValueValidator(1), MaxValueValidator(86400)],
                                             help_text="an idle session ends after this many seconds")
    # The packages the pool's sessions can import: a built runtime (its layer is then kept on
    # disk, runtimes.build.prune_layers), or empty for whichever runtime is active when a
    # session starts. A session keeps the layer it started on.
    runtime = models.ForeignKey("runtimes.Runtime", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="session_pools",
                                help_text="the package runtime sessions use; empty: the active one")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.runtime_id is not None:
            layer = self.runtime.layer()
            if layer is None:
                raise ValidationError({"runtime": f"runtime #{self.runtime_id} is {self.runtime.status}; "
                                                  "a pool can only use a built (ready) runtime"})
            if not layer.layer_dir.is_dir():
                raise ValidationError({"runtime": f"the layer of runtime #{self.runtime_id} is no longer on disk; "
                                                  "build it again"})

    def idle_sessions(self, now):
        """Open sessions idle past the cooldown and not busy: they count as ended."""
        return (self.sessions.filter(ended__isnull=True, last_used__lt=now - timedelta(seconds=self.cooldown_s))
                .exclude(busy_until__gt=now))

    def live_sessions(self, now):
        """Open sessions that still count: used within the cooldown, or busy."""
        return self.sessions.filter(Q(last_used__gte=now - timedelta(seconds=self.cooldown_s)) | Q(busy_until__gt=now),
                                    ended__isnull=True)

    def layer(self) -> dict | None:
        """The layer sessions of this pool run on (ExecutionRequest.layer); None: the active one."""
        if self.runtime_id is None:
            return None
        layer = self.runtime.layer()
        return layer.to_dict() if layer is not None else None


class PoolSession(models.Model):
    pool = models.ForeignKey(SessionPool, on_delete=models.CASCADE, related_name="sessions")
    identifier = models.CharField(max_length=IDENTIFIER_MAX)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pool_sessions")
    api_key = models.ForeignKey("agents.ApiKey", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="pool_sessions")
    sandbox_key = models.CharField(max_length=64, unique=True, default=new_sandbox_key)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)
    executions = models.PositiveIntegerField(default=0)
    # set while one call runs in the session (calls on a session run one at a time)
    busy_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_used", "-id"]
        constraints = [models.UniqueConstraint(fields=["pool", "owner", "identifier"], condition=Q(ended__isnull=True),
                                               name="agents_poolsession_open_unique")]

    def __str__(self) -> str:
        return f"{self.pool.name}/{self.identifier} ({self.owner_id})"

    def is_live(self, now) -> bool:
        """Not idle past its pool's cooldown (SessionPool.live_sessions, for one row)."""
        return ((self.busy_until is not None and self.busy_until > now)
                or self.last_used >= now - timedelta(seconds=self.pool.cooldown_s))
