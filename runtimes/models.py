"""Which Python packages code steps may import (AllowedPackage), and the runtimes built from
that list (Runtime: an exact lock, a build log, and the package layer both sandbox drivers use).

Only `runtimes.actions` (and its worker side, `runtimes.build`) changes these rows; exactly one
Runtime is active at a time.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from packaging.utils import canonicalize_name


class AllowedPackage(models.Model):
    """One distribution staff allow code steps to import (with its dependencies)."""

    class Source(models.TextChoices):
        INDEX = "index", "Package index"
        WHEEL = "wheel", "Uploaded wheel"

    name = models.CharField(max_length=100, help_text="Distribution name as entered, e.g. 'python-dateutil'.")
    normalized = models.CharField(max_length=100, unique=True, editable=False,
                                  help_text="PEP 503 normalized name (unique).")
    specifier = models.CharField(max_length=200, blank=True, default="",
                                 help_text="PEP 440 version specifier, e.g. '>=2.1,<3'; empty = latest.")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.INDEX)
    wheel_filename = models.CharField(max_length=255, blank=True, default="")
    wheel_sha256 = models.CharField(max_length=64, blank=True, default="")
    wheel_size = models.BigIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    notes = models.TextField(blank=True, default="")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    added = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["normalized"]

    def __str__(self):
        return self.requirement()

    def save(self, *args, **kwargs):
        self.normalized = canonicalize_name(self.name)
        super().save(*args, **kwargs)

    def requirement(self) -> str:
        """The pip requirement for an index package, e.g. 'pandas>=2.1,<3'."""
        return f"{self.name}{self.specifier}"

    def snapshot(self) -> dict:
        """What a build records about this entry (Runtime.requested)."""
        return {
            "name": self.normalized, "specifier": self.specifier, "source": self.source,
            "wheel_filename": self.wheel_filename, "wheel_sha256": self.wheel_sha256,
        }


class Runtime(models.Model):
    """One build of the enabled packages: resolved lock, log, layer; at most one is active."""

    class Status(models.TextChoices):
        """Closed set; stored values are never renamed."""

        QUEUED = "queued", "Queued"          # requested; waits for the worker
        BUILDING = "building", "Building"    # the worker resolves/installs/images it
        READY = "ready", "Ready"             # built; may be (or have been) the active runtime
        FAILED = "failed", "Failed"          # the build failed; the previous runtime stays active

    TERMINAL = frozenset({Status.READY, Status.FAILED})
    # from-status -> statuses a build may move to (`runtimes.build.move` is the only mover)
    ALLOWED = {
        Status.QUEUED: frozenset({Status.BUILDING, Status.FAILED}),
        Status.BUILDING: frozenset({Status.READY, Status.FAILED}),
    }

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=40, blank=True, default="",
                             help_text="What the build is doing now (resolving, installing, ...).")
    requested = models.JSONField(default=list, blank=True,
                                 help_text="Snapshot of the enabled packages the build started from.")
    lock = models.JSONField(default=list, blank=True,
                            help_text="[{name, version, sha256, source, requested}] exactly as installed.")
    lock_hash = models.CharField(max_length=64, blank=True, default="")
    image_id = models.CharField(max_length=64, blank=True, default="",
                                help_text="Layer id: the hash its directory is keyed by.")
    layer_dir = models.CharField(max_length=500, blank=True, default="")
    image_path = models.CharField(max_length=500, blank=True, default="")
    modules = models.JSONField(default=list, blank=True, help_text="Importable top-level module names.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    reused = models.BooleanField(default=False, help_text="The layer was already built (cache hit).")
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=200, blank=True, default="")
    active = models.BooleanField(default=False, db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    activated = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_runtime"),
        ]

    def __str__(self):
        return f"Runtime #{self.pk} ({self.status}{', active' if self.active else ''})"

    @property
    def is_finished(self) -> bool:
        """True once the build succeeded or failed."""
        return self.status in self.TERMINAL

    def layer(self):
        """The sandbox's view of this runtime's package layer (sandbox.layers.Layer); None until
        it is built."""
        from pathlib import Path

        from sandbox.layers import Layer

        if self.status != self.Status.READY or not self.layer_dir:
            return None
        return Layer(runtime_id=self.pk, layer_dir=Path(self.layer_dir),
                     image_path=Path(self.image_path) if self.image_path else None, modules=tuple(self.modules))

    def lock_map(self) -> dict[str, str]:
        """{normalized name: version} of the lock."""
        return {p["name"]: p["version"] for p in self.lock}
