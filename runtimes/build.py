"""Building a runtime, worker side (`runtimes.tasks.build_runtime` runs `do_build_runtime`):
claim a queued runtime, build its layer, record the lock and the log, activate it; and the one
guarded way a build's status changes (`move`).

Imports neither `runtimes.actions` nor `runtimes.tasks`: actions enqueue the task, the task runs
this module, and this module knows neither of them.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.status import sources
from runtimes import builder
from runtimes.models import AllowedPackage, Runtime
from sandbox.config import SandboxConfig
from sandbox.layers import write_active_layer

log = logging.getLogger(__name__)

LOG_CAP = 400_000            # characters of build log kept (the head and the tail)
LOG_FLUSH_S = 0.75


class PackageError(ValueError):
    """A package change that cannot be made (the message is meant for the user)."""


# ------------------------------------------------------------------------------- where things are
def cache_dir() -> Path:
    """Where layers are built: SANDBOX_CACHE_DIR (default ~/.cache/stepwell), like the drivers."""
    return Path(getattr(settings, "STEPWELL_RUNTIME_CACHE_DIR", None) or SandboxConfig.from_env().cache_dir)


def wheel_dir() -> Path:
    return Path(getattr(settings, "STEPWELL_WHEEL_DIR", None) or Path(settings.VAR_DIR) / "wheels")


def wheel_path(pkg: AllowedPackage) -> Path:
    """Where an uploaded wheel is stored (by sha256, under its own file name)."""
    return wheel_dir() / pkg.wheel_sha256 / pkg.wheel_filename


# ------------------------------------------------------------------------------- status moves
def move(rows, to: str, *, expect: str | tuple[str, ...] | None = None, **fields) -> int:
    """Move the runtimes in queryset `rows` to build status `to` (also setting `fields`), but only
    those still in an expected status (`expect`; default any status `Runtime.ALLOWED` lets reach
    `to`): one conditional UPDATE, as `engine.states.transition` does for runs, so a reaper and a
    finishing worker cannot both decide. A terminal move stamps `finished`. Returns how many moved.

    :raises engine.status.TransitionError: `to` is not reachable from any expected status.
    """
    froms = sources(Runtime.ALLOWED, to, expect)
    if to in Runtime.TERMINAL:
        fields.setdefault("finished", timezone.now())
    return rows.filter(status__in=froms).update(status=to, **fields)


def reap_stale_builds() -> int:
    """Mark builds whose worker vanished (still 'building' long after the build timeout) failed."""
    limit = timezone.now() - timezone.timedelta(
        seconds=float(getattr(settings, "STEPWELL_RUNTIME_BUILD_TIMEOUT_S", 1800)) + 300)
    return move(Runtime.objects.filter(started__lt=limit), Runtime.Status.FAILED, expect=Runtime.Status.BUILDING,
                phase="", error="the build stopped without finishing (worker lost); the previous runtime stays active")


# ------------------------------------------------------------------------------- the build
class _LogSink:
    """Collects build output and writes it to the Runtime row at most every LOG_FLUSH_S.

    Keeps the first LOG_CAP characters and, past that, the last 300 lines.
    """

    def __init__(self, runtime_id: int):
        self.runtime_id = runtime_id
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=300)
        self.size = 0
        self.dropped = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            if self.size <= LOG_CAP:
                self.head.append(line)
                self.size += len(line) + 1
            else:
                if len(self.tail) == self.tail.maxlen:
                    self.dropped += 1
                self.tail.append(line)
        if time.monotonic() - self.last > LOG_FLUSH_S:
            self.flush()

    def text(self) -> str:
        with self.lock:
            middle = [f"... {self.dropped} lines omitted ..."] if self.dropped else []
            return "\n".join(self.head + middle + list(self.tail))

    def flush(self, **fields) -> None:
        self.last = time.monotonic()
        Runtime.objects.filter(pk=self.runtime_id).update(log=self.text(), **fields)

    def finish(self, to: str, **fields) -> bool:
        """Write the log and end the build in status `to` (if it is still building)."""
        self.last = time.monotonic()
        moved = bool(move(Runtime.objects.filter(pk=self.runtime_id), to, expect=Runtime.Status.BUILDING,
                          log=self.text(), phase="", **fields))
        if moved:
            from governance.actions import record

            record("runtime.build_finished", actor="worker", payload={
                "runtime": self.runtime_id, "status": to, "lock_hash": fields.get("lock_hash", ""),
                "error": str(fields.get("error", ""))[:2000]})
        return moved


def _stored_status(runtime_id: int) -> str:
    return Runtime.objects.filter(pk=runtime_id).values_list("status", flat=True).first() or "missing"


def do_build_runtime(runtime_id: int) -> str:
    """Build a queued runtime (worker side) and activate it on success.

    On failure the runtime is marked failed with the reason and the previous one stays active.
    Returns the final status.
    """
    now = timezone.now()
    claimed = move(Runtime.objects.filter(pk=runtime_id), Runtime.Status.BUILDING, expect=Runtime.Status.QUEUED,
                   started=now, phase="starting")
    if not claimed:
        return _stored_status(runtime_id)
    packages = list(AllowedPackage.objects.filter(enabled=True).order_by("normalized"))
    requested = [p.snapshot() for p in packages]
    Runtime.objects.filter(pk=runtime_id).update(requested=requested)
    sink = _LogSink(runtime_id)
    sink(f"Build of runtime #{runtime_id} started {now:%Y-%m-%d %H:%M:%S} UTC "
         f"with {len(packages)} enabled package(s): "
         + (", ".join(p.requirement() if p.source == "index" else p.wheel_filename for p in packages) or "none"))

    def phase(name: str) -> None:
        sink.flush(phase=name)

    try:
        requirements = [p.requirement() for p in packages if p.source == AllowedPackage.Source.INDEX]
        wheels = []
        for p in packages:
            if p.source == AllowedPackage.Source.WHEEL:
                path = wheel_path(p)
                if not path.exists():
                    raise builder.BuildError(f"the uploaded wheel {p.wheel_filename} is missing from {path.parent}")
                wheels.append(path)
        timeout = float(getattr(settings, "STEPWELL_RUNTIME_BUILD_TIMEOUT_S", 1800))
        built = builder.build_layer(requirements, wheels, cache_dir(), log=sink, phase=phase, timeout=timeout)
    except builder.BuildError as exc:
        sink(f"FAILED: {exc}")
        sink.finish(Runtime.Status.FAILED, error=str(exc))
        return Runtime.Status.FAILED
    except Exception as exc:  # noqa: BLE001 - anything else is still a failed build, not a stuck one
        log.exception("build of runtime %s crashed", runtime_id)
        sink(f"FAILED: internal error: {exc!r}")
        sink.finish(Runtime.Status.FAILED, error=f"internal error: {exc!r}")
        return Runtime.Status.FAILED
    by_name = {p.normalized for p in packages}
    lock = []
    for e in built.lock:
        d = e.to_dict()
        d.pop("url", None)
        d["requested"] = e.name in by_name
        lock.append(d)
    ready = sink.finish(
        Runtime.Status.READY, lock=lock, lock_hash=built.layer_id, image_id=built.layer_id,
        layer_dir=str(built.site_dir), image_path=str(built.image_path or ""), modules=list(built.modules),
        size_bytes=built.size_bytes, reused=built.reused,
    )
    if not ready:  # reaped as lost while it built: the failure stands, nothing is activated
        return _stored_status(runtime_id)
    do_activate(Runtime.objects.get(pk=runtime_id))
    sink("Activated: new executions use this runtime; running ones finish on the previous one.")
    removed = prune_layers()
    if removed:
        sink(f"Removed {len(removed)} old layer(s) no recent runtime uses: {', '.join(removed)}")
    sink.flush()
    return Runtime.Status.READY


def prune_layers() -> list[str]:
    """Delete layers that neither the active runtime nor the last few built ones use
    (STEPWELL_RUNTIME_KEEP_LAYERS, so rolling back stays instant)."""
    keep_n = int(getattr(settings, "STEPWELL_RUNTIME_KEEP_LAYERS", 5))
    recent = Runtime.objects.filter(status=Runtime.Status.READY).exclude(image_id="")
    keep = set(recent.filter(active=True).values_list("image_id", flat=True))
    # and those that session pools are pinned to (agents.SessionPool.runtime)
    keep |= set(recent.filter(session_pools__isnull=False).values_list("image_id", flat=True))
    for image_id in recent.order_by("-id").values_list("image_id", flat=True):
        if len(keep) >= keep_n + 1:
            break
        keep.add(image_id)
    return builder.prune_layers(cache_dir(), keep)


def do_activate(runtime: Runtime) -> Runtime:
    """Make a built runtime the active one: the DB flag and the drivers' pointer file, together.

    :raises PackageError: the runtime is not built or its layer is gone.
    """
    if runtime.status != Runtime.Status.READY:
        raise PackageError(f"Runtime #{runtime.pk} is {runtime.status}; only a built runtime can be activated.")
    if not runtime.layer_dir or not Path(runtime.layer_dir).is_dir():
        raise PackageError(f"The layer of runtime #{runtime.pk} is no longer on disk; build again.")
    with transaction.atomic():
        Runtime.objects.select_for_update().filter(active=True).exclude(pk=runtime.pk).update(active=False)
        runtime.active = True
        runtime.activated = timezone.now()
        Runtime.objects.filter(pk=runtime.pk).update(active=True, activated=runtime.activated)
        write_active_layer(cache_dir(), runtime.layer())
        from governance.actions import record

        record("runtime.activated", payload={"runtime": runtime.pk, "lock_hash": runtime.lock_hash})
    return runtime
