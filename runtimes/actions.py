"""State changes of the allow-list and of runtimes. Views and the admin call these; `do_*`
functions change rows (and the active-layer pointer), `check_*` functions validate input.

A change to the list requests a build (coalesced: while one build is still queued, no second
one is added, since it snapshots the list only when the worker starts it). Builds run in the
worker (`runtimes.tasks.build_runtime`, which runs `runtimes.build`), never in a request; the
build-side functions are re-exported here so that callers have one place to look.
"""
from __future__ import annotations

import logging
import re
import time

from django.conf import settings
from django.db import transaction
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from engine.wake import poke
from runtimes.build import (  # noqa: F401 - re-exported: the build side of these state changes
    PackageError, cache_dir, do_activate, do_build_runtime, move, prune_layers, reap_stale_builds, wheel_dir,
    wheel_path,
)
from runtimes.models import AllowedPackage, Runtime
from runtimes.tasks import build_runtime
from runtimes.wheels import WheelError, validate_wheel

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_SPEC_RE = re.compile(r"^[A-Za-z0-9.*+!<>=~,_-]+$")


# ------------------------------------------------------------------------------- configuration
def max_wheel_bytes() -> int:
    return int(getattr(settings, "STEPWELL_MAX_WHEEL_BYTES", 100 * 1024 * 1024))


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


def _audit(kind: str, user, **payload) -> None:
    """A `package.*` / `runtime.*` audit event (governance), inside the caller's transaction."""
    from governance.actions import actor_of, record

    record(kind, actor=actor_of(user), payload=payload)


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
        _audit("package.added", user, name=pkg.name, specifier=pkg.specifier, enabled=pkg.enabled)
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
        _audit("package.changed", user, name=pkg.name, changes={k: v for k, v in changes.items()})
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
        _audit("package.removed", user, name=name, wheel_sha256=sha or "")
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
        _audit("package.uploaded", user, name=pkg.name, filename=info.filename, sha256=info.sha256, size=info.size)
    return pkg


# ------------------------------------------------------------------------------- builds
def do_request_build(*, user=None, reason: str = "") -> Runtime:
    """Queue a build of the enabled packages (reuses a build that is still queued)."""
    reap_stale_builds()
    with transaction.atomic():
        queued = Runtime.objects.filter(status=Runtime.Status.QUEUED).order_by("id").first()
        if queued is not None:
            if reason and reason not in queued.reason:
                queued.reason = (f"{queued.reason}; {reason}" if queued.reason else reason)[:200]
                queued.save(update_fields=["reason"])
            return queued
        runtime = Runtime.objects.create(requested_by=user, reason=reason[:200])
        _audit("runtime.build_requested", user, runtime=runtime.pk, reason=runtime.reason)
        transaction.on_commit(lambda: _enqueue(build_runtime, runtime.pk))
    return runtime


def _enqueue(task, runtime_id: int) -> None:
    try:
        task.enqueue(runtime_id)
    except Exception as exc:  # noqa: BLE001 - a missing backend must not lose the request silently
        log.exception("could not enqueue build of runtime %s", runtime_id)
        move(Runtime.objects.filter(pk=runtime_id), Runtime.Status.FAILED, expect=Runtime.Status.QUEUED,
             error=f"could not queue the build: {exc}")
        return
    try:
        poke()
    except Exception:  # noqa: BLE001 - waking is an optimisation
        pass


def active_runtime() -> Runtime | None:
    return Runtime.objects.filter(active=True).first()
