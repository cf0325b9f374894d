"""State changes of the allow-list and of runtimes. Views and the admin call these; `do_*`
functions change rows (and the active-layer pointer), `check_*` functions validate input.

A change to the list requests a build (coalesced: while one build is still queued, no second
one is added, since it snapshots the list only when the worker starts it). Builds run in the
worker (`runtimes.tasks.build_runtime`), never in a request.
"""
from __future__ import annotations

import collections
import logging
import re
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from runtimes import builder
from runtimes.models import AllowedPackage, Runtime
from runtimes.wheels import WheelError, validate_wheel
from sandbox.config import SandboxConfig
from sandbox.layers import Layer, write_active_layer

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_SPEC_RE = re.compile(r"^[A-Za-z0-9.*+!<>=~,_-]+$")
LOG_CAP = 400_000            # characters of build log kept (the head and the tail)
LOG_FLUSH_S = 0.75


class PackageError(ValueError):
    """A package change that cannot be made (the message is meant for the user)."""


# ------------------------------------------------------------------------------- configuration
def cache_dir() -> Path:
    """Where layers are built: SANDBOX_CACHE_DIR (default ~/.cache/stepwell), like the drivers."""
    return Path(getattr(settings, "STEPWELL_RUNTIME_CACHE_DIR", None) or SandboxConfig.from_env().cache_dir)


def wheel_dir() -> Path:
    return Path(getattr(settings, "STEPWELL_WHEEL_DIR", None) or Path(settings.VAR_DIR) / "wheels")


def max_wheel_bytes() -> int:
    return int(getattr(settings, "STEPWELL_MAX_WHEEL_BYTES", 100 * 1024 * 1024))


def wheel_path(pkg: AllowedPackage) -> Path:
    """Where an uploaded wheel is stored (by sha256, under its own file name)."""
    return wheel_dir() / pkg.wheel_sha256 / pkg.wheel_filename


# ------------------------------------------------------------------------------- validation
def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise PackageError("Enter a distribution name, e.g. 'pandas'.")
    if len(name) > 100 or not _NAME_RE.match(name):
        raise PackageError(f"{name!r} is not a valid distribution name (letters, digits, '.', '_', '-').")
    return name


def check_specifier(spec: str) -> str:
    """A PEP 440 specifier set such as '>=2.1,<3' ('' = any version)."""
    spec = (spec or "").strip().replace(" ", "")
    if not spec:
        return ""
    if spec[0].isdigit():
        spec = "==" + spec
    try:
        if not _SPEC_RE.match(spec):  # '===' takes any text: no URL, marker or option reaches pip
            raise InvalidSpecifier(spec)
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise PackageError(f"{spec!r} is not a valid version specifier (for example '>=2.1,<3' or '==1.4.2').") from None
    return spec


def parse_requirement(text: str) -> tuple[str, str]:
    """'pandas>=2,<3' -> ('pandas', '>=2,<3'); refuses URLs, extras and markers."""
    try:
        req = Requirement((text or "").strip())
    except InvalidRequirement as exc:
        raise PackageError(f"{text!r} is not a valid requirement: {exc}") from None
    if req.url or req.marker or req.extras:
        raise PackageError("Give a name and an optional version specifier only (no URL, extras or markers).")
    raw = text.strip()
    spec = raw[len(req.name):] if raw.startswith(req.name) else str(req.specifier)
    return check_name(req.name), check_specifier(spec)


# ------------------------------------------------------------------------------- the list
def do_add_package(name: str, specifier: str = "", *, notes: str = "", user=None,
                   enabled: bool = True, rebuild: bool = True) -> AllowedPackage:
    """Add an index package to the allow-list (and request a build)."""
    name, specifier = check_name(name), check_specifier(specifier)
    with transaction.atomic():
        if AllowedPackage.objects.filter(normalized=canonicalize_name(name)).exists():
            raise PackageError(f"{name} is already on the list; edit that entry instead.")
        pkg = AllowedPackage.objects.create(name=name, specifier=specifier, notes=notes or "",
                                            enabled=enabled, added_by=user)
        if rebuild:
            do_request_build(user=user, reason=f"added {pkg}")
    return pkg


def do_update_package(pkg: AllowedPackage, *, user=None, rebuild: bool = True, **changes) -> AllowedPackage:
    """Change `enabled`, `specifier` and/or `notes` of an entry (a build follows when the set changes)."""
    unknown = set(changes) - {"enabled", "specifier", "notes"}
    if unknown:
        raise PackageError(f"cannot change {', '.join(sorted(unknown))}")
    if "specifier" in changes:
        if pkg.source == AllowedPackage.Source.WHEEL and changes["specifier"]:
            raise PackageError("An uploaded wheel has its own exact version; upload another wheel to change it.")
        changes["specifier"] = check_specifier(changes["specifier"])
    affects_build = any(k in changes and changes[k] != getattr(pkg, k) for k in ("enabled", "specifier"))
    with transaction.atomic():
        for k, v in changes.items():
            setattr(pkg, k, v)
        pkg.save()
        if rebuild and affects_build:
            verb = "changed" if "specifier" in changes else ("enabled" if pkg.enabled else "disabled")
            do_request_build(user=user, reason=f"{verb} {pkg.name}")
    return pkg


def do_remove_package(pkg: AllowedPackage, *, user=None, rebuild: bool = True) -> None:
    """Delete an entry (its uploaded wheel file too, unless another entry uses it)."""
    with transaction.atomic():
        name, was_enabled = pkg.name, pkg.enabled
        sha = pkg.wheel_sha256
        path = wheel_path(pkg) if sha else None
        pkg.delete()
        if rebuild and was_enabled:
            do_request_build(user=user, reason=f"removed {name}")
    if path is not None and not AllowedPackage.objects.filter(wheel_sha256=sha).exists():
        try:
            path.unlink()
            path.parent.rmdir()
        except OSError:
            pass


def do_upload_wheel(filename: str, data: bytes, *, user=None, notes: str = "",
                    rebuild: bool = True) -> AllowedPackage:
    """Validate and store an uploaded wheel and put it on the list (replacing the entry of the
    same distribution, if any). Nothing changes when the wheel is refused.

    :raises PackageError: the wheel does not fit (the message says why).
    """
    try:
        info = validate_wheel(filename, data, max_wheel_bytes())
    except WheelError as exc:
        raise PackageError(str(exc)) from None
    dest = wheel_dir() / info.sha256 / info.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{time.monotonic_ns()}")
    tmp.write_bytes(data)
    tmp.replace(dest)
    with transaction.atomic():
        pkg = AllowedPackage.objects.filter(normalized=info.name).first()
        if pkg is None:
            pkg = AllowedPackage(name=info.name, added_by=user)
        pkg.source = AllowedPackage.Source.WHEEL
        pkg.specifier = ""
        pkg.wheel_filename, pkg.wheel_sha256, pkg.wheel_size = info.filename, info.sha256, info.size
        pkg.enabled = True
        if notes:
            pkg.notes = notes
        pkg.save()
        if rebuild:
            do_request_build(user=user, reason=f"uploaded {info.filename}")
    return pkg


# ------------------------------------------------------------------------------- builds
def do_request_build(*, user=None, reason: str = "") -> Runtime:
    """Queue a build of the enabled packages (reuses a build that is still queued)."""
    from runtimes.tasks import build_runtime

    reap_stale_builds()
    with transaction.atomic():
        queued = Runtime.objects.filter(status=Runtime.Status.QUEUED).order_by("id").first()
        if queued is not None:
            if reason and reason not in queued.reason:
                queued.reason = (f"{queued.reason}; {reason}" if queued.reason else reason)[:200]
                queued.save(update_fields=["reason"])
            return queued
        runtime = Runtime.objects.create(requested_by=user, reason=reason[:200])
        transaction.on_commit(lambda: _enqueue(build_runtime, runtime.pk))
    return runtime


def _enqueue(task, runtime_id: int) -> None:
    try:
        task.enqueue(runtime_id)
    except Exception as exc:  # noqa: BLE001 - a missing backend must not lose the request silently
        log.exception("could not enqueue build of runtime %s", runtime_id)
        Runtime.objects.filter(pk=runtime_id, status=Runtime.Status.QUEUED).update(
            status=Runtime.Status.FAILED, error=f"could not queue the build: {exc}", finished=timezone.now())
        return
    try:
        from engine.wake import poke

        poke()
    except Exception:  # noqa: BLE001 - waking is an optimisation
        pass


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


def do_build_runtime(runtime_id: int) -> str:
    """Build a queued runtime (worker side) and activate it on success.

    On failure the runtime is marked failed with the reason and the previous one stays active.
    Returns the final status.
    """
    now = timezone.now()
    claimed = Runtime.objects.filter(pk=runtime_id, status=Runtime.Status.QUEUED).update(
        status=Runtime.Status.BUILDING, started=now, phase="starting")
    if not claimed:
        return Runtime.objects.filter(pk=runtime_id).values_list("status", flat=True).first() or "missing"
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
        sink.flush(status=Runtime.Status.FAILED, phase="", error=str(exc), finished=timezone.now())
        return Runtime.Status.FAILED
    except Exception as exc:  # noqa: BLE001 - anything else is still a failed build, not a stuck one
        log.exception("build of runtime %s crashed", runtime_id)
        sink(f"FAILED: internal error: {exc!r}")
        sink.flush(status=Runtime.Status.FAILED, phase="", error=f"internal error: {exc!r}", finished=timezone.now())
        return Runtime.Status.FAILED
    by_name = {p.normalized for p in packages}
    lock = []
    for e in built.lock:
        d = e.to_dict()
        d.pop("url", None)
        d["requested"] = e.name in by_name
        lock.append(d)
    sink.flush(
        status=Runtime.Status.READY, phase="", lock=lock, lock_hash=built.layer_id, image_id=built.layer_id,
        layer_dir=str(built.site_dir), image_path=str(built.image_path or ""), modules=list(built.modules),
        size_bytes=built.size_bytes, reused=built.reused, finished=timezone.now(),
    )
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
    for image_id in recent.order_by("-id").values_list("image_id", flat=True):
        if len(keep) >= keep_n + 1:
            break
        keep.add(image_id)
    return builder.prune_layers(cache_dir(), keep)


def reap_stale_builds() -> int:
    """Mark builds whose worker vanished (still 'building' long after the build timeout) failed."""
    limit = timezone.now() - timezone.timedelta(
        seconds=float(getattr(settings, "STEPWELL_RUNTIME_BUILD_TIMEOUT_S", 1800)) + 300)
    return Runtime.objects.filter(status=Runtime.Status.BUILDING, started__lt=limit).update(
        status=Runtime.Status.FAILED, phase="", finished=timezone.now(),
        error="the build stopped without finishing (worker lost); the previous runtime stays active")


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
        write_active_layer(cache_dir(), Layer(
            runtime_id=runtime.pk, layer_dir=Path(runtime.layer_dir),
            image_path=Path(runtime.image_path) if runtime.image_path else None,
            modules=tuple(runtime.modules),
        ))
    return runtime


def active_runtime() -> Runtime | None:
    return Runtime.objects.filter(active=True).first()
