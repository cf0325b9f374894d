"""Workflows (Workflow, and WorkflowVersion: immutable definitions) and their runs: Run, StepRun
(one per node attempt), StepEvent (append-only history), produced files, inferred output
schemas, pinned sample outputs, hook tokens and schedule ticks.

Statuses only change through `engine.states.transition`; rows in a terminal status are frozen
(their `save()` refuses), and StepEvent rows are insert-only.
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from engine.status import TERMINAL, Status


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
        db_table = "designer_workflow"  # the name it had while the designer app owned it
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["owner", "-updated"], name="designer_wo_owner_i_b5f00e_idx")]

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
        db_table = "designer_workflowversion"
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"

    def save(self, *args, **kwargs):
        """Insert only: a version is never updated."""
        if self.pk is not None:
            raise ImmutableError("workflow versions are immutable")
        super().save(*args, **kwargs)


class FrozenWhenFinished(models.Model):
    """Refuses `save()` once the stored row reached a terminal status."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored in TERMINAL:
                raise ImmutableError(f"{type(self).__name__} {self.pk} is finished and cannot change")
        super().save(*args, **kwargs)


class Run(FrozenWhenFinished):
    """One execution of a pinned workflow version (or, with kind=test, of one node of it)."""

    class Kind(models.TextChoices):
        RUN = "run", "Run"
        TEST = "test", "Step test"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (designer or API)"
        HTTP = "http", "HTTP request"
        SCHEDULE = "schedule", "Schedule"
        RERUN = "rerun", "Rerun"
        TEST = "test", "Step test"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.RUN)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # who started it as the audit names them ("alice", or "alice/ci" through an API key), kept so
    # that the worker records the run's code steps for the same actor; empty for triggers
    actor = models.CharField(max_length=200, blank=True, default="")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, default="")
    response = models.JSONField(null=True, blank=True, help_text="What a Response node produced.")
    test_node = models.CharField(max_length=64, blank=True, default="")
    test_upstream = models.JSONField(null=True, blank=True, help_text="Step test: namespace given.")
    definition = models.JSONField(null=True, blank=True, help_text=(
        "The unsaved draft this run executed instead of its version's definition (a step test of "
        "the editor's draft); `version` is then the saved version the draft was based on."))
    draft_hash = models.CharField(max_length=64, blank=True, default="",
                                  help_text="SHA-256 of the draft (engine.drafts.definition_hash).")
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=80, blank=True, default="")
    lease_expires = models.DateTimeField(null=True, blank=True)
    reply_socket = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["workflow", "kind", "-id"]),
                   models.Index(fields=["status", "lease_expires"])]

    def __str__(self) -> str:
        return f"run {self.pk} of workflow {self.workflow_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration_ms(self) -> float | None:
        if self.started and self.finished:
            return round((self.finished - self.started).total_seconds() * 1000, 3)
        return None


class StepRun(FrozenWhenFinished):
    """One attempt of one node within a run (per item when inside a For each)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=40)
    item_index = models.IntegerField(null=True, blank=True, help_text="For each iteration, else null.")
    # the iteration of every enclosing For each, outermost first ("2.5": item 5 of the inner loop
    # in item 2 of the outer); "" outside loops. What a resumed run finds its records by.
    item_path = models.CharField(max_length=100, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    inputs = models.JSONField(null=True, blank=True, help_text="Parameters after mapping.")
    output = models.JSONField(null=True, blank=True)
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    sandbox = models.JSONField(default=dict, blank=True, help_text="Sandbox status, timings and metadata.")
    runtime_id = models.IntegerField(null=True, blank=True, db_index=True,
                                     help_text="runtimes.Runtime the code ran on (Python steps); null otherwise.")
    files = models.JSONField(default=list, blank=True, help_text="[{name, size, truncated}]")
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "node_id"])]

    def __str__(self) -> str:
        return f"{self.node_id}#{self.attempt} ({self.status})"

    @property
    def duration_ms(self) -> float | None:
        if self.started and self.finished:
            return round((self.finished - self.started).total_seconds() * 1000, 3)
        return None


class StepFile(models.Model):
    """A file a Python step left in its working directory (content kept up to the sandbox cap)."""

    step = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="produced_files")
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    truncated = models.BooleanField(default=False)
    content = models.BinaryField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "name"], name="unique_step_file")]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableError("step files are immutable")
        super().save(*args, **kwargs)


class StepEvent(models.Model):
    """Append-only history of status changes (run-level when step is null). Streamed to the UI."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    step = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    node_id = models.CharField(max_length=64, blank=True, default="")
    item_index = models.IntegerField(null=True, blank=True)
    attempt = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableError("step events are append-only")
        super().save(*args, **kwargs)

    def to_message(self) -> dict:
        """The JSON sent to websocket clients."""
        return {
            "type": ("run.status" if self.step_id is None
                     else "step.output" if isinstance(self.data, dict) and self.data.get("live")
                     else "step.status"),   # live output: engine.events.step_output
            "event_id": self.pk, "run_id": self.run_id, "step_id": self.step_id,
            "node_id": self.node_id or None, "item_index": self.item_index, "attempt": self.attempt,
            "status": self.status, "data": self.data, "at": self.created.isoformat(),
        }


class NodeSchema(models.Model):
    """The merged JSON Schema (genson SchemaBuilder format) of a node's successful outputs."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="node_schemas")
    node_id = models.CharField(max_length=64)
    schema = models.JSONField()
    samples = models.PositiveIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "node_id"], name="unique_node_schema")]


class PinnedOutput(models.Model):
    """Sample output pinned on a node for field pickers and step tests."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="pins")
    node_id = models.CharField(max_length=64)
    output = models.JSONField(null=True)
    params_hash = models.CharField(max_length=64, help_text="sha256 of the node's parameters when pinned.")
    source_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "node_id"], name="unique_pin")]


def _new_token() -> str:
    return secrets.token_urlsafe(24)


class HookToken(models.Model):
    """The secret part of a workflow's HTTP trigger URL (/hooks/<token>/)."""

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="hook")
    token = models.CharField(max_length=64, unique=True, default=_new_token)
    created = models.DateTimeField(auto_now_add=True)


class ScheduleTick(models.Model):
    """One due time of a schedule trigger; the unique constraint makes it start at most one run."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="ticks")
    due = models.DateTimeField()
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "due"], name="unique_schedule_tick")]


# The model endpoints of AI agent steps (engine/agent_connections.py), re-exported for migrations.
from engine.agent_connections import ModelConnection  # noqa: E402,F401
