"""Workflows and their immutable versions."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ImmutableError(RuntimeError):
    """Raised when code tries to change a record that must never change."""


class Workflow(models.Model):
    """A named workflow owned by one user; its definition lives in its versions."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    head = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The latest version.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["owner", "-updated"])]

    def __str__(self) -> str:
        return self.name

    @property
    def definition(self) -> dict | None:
        """The definition of the latest version."""
        return self.head.definition if self.head else None


class WorkflowVersion(models.Model):
    """One saved definition of a workflow. Created once, never changed."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    message = models.CharField(max_length=500, blank=True, default="")
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"

    def save(self, *args, **kwargs):
        """Insert only: a version is never updated."""
        if self.pk is not None:
            raise ImmutableError("workflow versions are immutable")
        super().save(*args, **kwargs)
