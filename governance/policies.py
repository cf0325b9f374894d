"""The instance policy: one row (pk 1) of limits staff set for every workflow.

Read it with `current()` (a plain `PolicyValues` snapshot the engine can use without knowing the
model). The egress ceiling lists the hosts any workflow may list in `settings.allowed_hosts`
(same forms: host, host:port, *.domain, or "*" for any host). It is empty by default, and an
empty ceiling allows NO host: staff open egress explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models


class Policy(models.Model):
    """Instance-wide limits; null limits mean "only the server's own caps" (settings)."""

    max_timeout_s = models.PositiveIntegerField(null=True, blank=True)
    max_memory_mib = models.PositiveIntegerField(null=True, blank=True)
    egress_ceiling = models.JSONField(default=list, blank=True)
    code_steps_group = models.CharField(max_length=150, blank=True)
    allow_process_driver = models.BooleanField(default=True)
    allow_workflow_isolation = models.BooleanField(default=True)   # settings.isolation "workflow"
    output_retention_days = models.PositiveIntegerField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name_plural = "policy"

    def __str__(self) -> str:
        return "Instance policy"


@dataclass(frozen=True)
class PolicyValues:
    """A snapshot of the policy, free of the ORM (what the evaluation in governance.rules reads)."""

    max_timeout_s: int | None = None
    max_memory_mib: int | None = None
    egress_ceiling: tuple[str, ...] = field(default_factory=tuple)
    code_steps_group: str = ""
    allow_process_driver: bool = True
    output_retention_days: int | None = None
    allow_workflow_isolation: bool = True


def load() -> Policy:
    """The policy row, created with the defaults when missing."""
    policy, _ = Policy.objects.get_or_create(pk=1)
    return policy


def current() -> PolicyValues:
    policy = Policy.objects.filter(pk=1).first()
    if policy is None:
        return PolicyValues()
    return PolicyValues(
        max_timeout_s=policy.max_timeout_s, max_memory_mib=policy.max_memory_mib,
        egress_ceiling=tuple(policy.egress_ceiling or ()), code_steps_group=policy.code_steps_group,
        allow_process_driver=policy.allow_process_driver, output_retention_days=policy.output_retention_days,
        allow_workflow_isolation=policy.allow_workflow_isolation,
    )
