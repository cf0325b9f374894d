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
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
