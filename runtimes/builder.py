"""Build a package layer: resolve with pip, install exactly the lock, image it for the VMs.

Pure helper (no Django): `build_layer(requirements, wheels, cache_dir, log=...)`.

1. Resolve: `pip install --dry-run --report` for CPython 3.11 / manylinux x86_64, binary wheels
   only, gives the exact set (requested packages and their dependencies) with each file's URL
   and sha256: the lock.
2. The layer id is a hash of the lock (plus the target and this builder's version). A layer
   already built under `<cache_dir>/layers/<id>/` is reused at once.
3. Otherwise install exactly those files (`--no-deps`, hash-checked) into a temporary
   `site/`, check the installed dist-infos against the lock, list the importable top-level
   modules, build an ext4 image of the tree (`mke2fs -d`, no journal) and rename the
   directory into place: readers never see a half-built layer.

pip never builds anything: every pip command line carries `--only-binary=:all:`, requirements
are names and version ranges (no URL, no marker), and the resolved set is checked again (every
file a wheel, every direct reference one of the uploaded wheels). pip runs in a `BuildBox`
(runtimes/buildbox.py): a fresh unprivileged uid in bubblewrap that sees only the build folder,
the package index and its own Python, never the service's files or secrets.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Callable, Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from runtimes.buildbox import BoxError, BuildBox
from runtimes.wheels import PYTHON_VERSION, WheelError, platforms, validate_wheel
from sandbox.layers import IMAGE_LABEL, layers_dir

BUILDER_VERSION = 2
SITE = "site"
IMAGE = "packages.img"
LOCK = "lock.json"
COMPLETE = "complete"
BOX = "box"                # the build folder pip sees (removed before the layer is moved into place)
SKIP_TOP = {"bin", "__pycache__", "share", "include", "etc"}
MAX_LOG_LINE = 2000


class BuildError(Exception):
    """The build failed; the message says why in one or two lines (details are in the log)."""


@dataclass(frozen=True)
class LockEntry:
    name: str          # normalized
    version: str
    sha256: str
    url: str
    requested: bool
    source: str        # "index" or "wheel"

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "url": self.url,
                "requested": self.requested, "source": self.source}


@dataclass(frozen=True)
class BuiltLayer:
    layer_id: str
    root: Path
    site_dir: Path
    image_path: Path | None
    lock: tuple[LockEntry, ...]
    modules: tuple[str, ...]
    size_bytes: int
    reused: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def pip_target_args() -> list[str]:
    """pip options that select wheels for the sandbox's interpreter and platform."""
    args = ["--only-binary=:all:", "--implementation", "cp",
            "--python-version", ".".join(map(str, PYTHON_VERSION)), "--abi", "cp311"]
    for p in platforms():
        args += ["--platform", p]
    return args


def _pip_base() -> list[str]:
    return [sys.executable, "-I", "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off", "--no-color"]


def _run(cmd: list[str], log: Callable[[str], None], timeout: float, box: BuildBox | None = None) -> int:
    """Run `cmd` (in `box` when given: pip always is), streaming its output to `log`."""
    log("$ " + " ".join(cmd) + (f"    [uid {box.uid}, bubblewrap]" if box else ""))
    if box is not None:
        cmd = box.command(cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", cwd="/", start_new_session=True,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"} if box else None)
    assert proc.stdout is not None
    timed_out = threading.Event()

    def kill() -> None:  # at the deadline, even when the command prints nothing
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # bubblewrap's sandbox dies with it (--die-with-parent)
        except OSError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        for line in proc.stdout:
            log(line.rstrip("\n")[:MAX_LOG_LINE])
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill()
            proc.wait()
    if timed_out.is_set():
        log(f"(killed after {timeout:.0f} s)")
        return -9
    return rc


def _tail_error(lines: list[str]) -> str:
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    picked = errors[-2:] if errors else [ln for ln in lines if ln.strip()][-2:]
    return " ".join(ln.strip() for ln in picked)[:500]


def check_requirement(text: str) -> str:
    """`text` if it is a plain 'name<version range>' requirement (what the allow-list holds).

    :raises BuildError: a URL, a marker, an option or anything else pip would treat specially.
    """
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise BuildError(f"{text!r} is not a valid requirement: {exc}") from None
    if req.url or req.marker or text.strip().startswith("-") or any(c in text for c in " @;#:/\\"):
        raise BuildError(f"{text!r} is not a plain name and version range; refusing to give it to pip")
    return text


def _read_report(path: Path) -> dict:
    """pip's --report, written in the box: opened without following links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BuildError(f"pip wrote no report: {exc}") from None
    with os.fdopen(fd, "rb") as fh:
        return json.loads(fh.read(64 * 1024 * 1024))


def _local_file(url: str, box: BuildBox) -> Path:
    """The file a file:// URL of the resolution names, if the box could see it (index or wheels)."""
    path = Path(os.path.normpath(url[len("file://"):].split("#", 1)[0]))
    if not any(path == p or p in path.parents for p in [box.root, *box.ro_paths]) or path.is_symlink():
        raise BuildError(f"pip resolved to {url}, which is neither in the package index nor an uploaded wheel")
    return path


def resolve(requirements: list[str], wheels: Iterable[Path], log: Callable[[str], None],
            box: BuildBox, timeout: float = 900) -> list[LockEntry]:
    """Ask pip (in `box`) which exact files install `requirements` + `wheels` for the sandbox.
    `wheels` must lie in the box's folder.

    :raises BuildError: when pip cannot resolve the set (unknown package, no fitting wheel,
        conflict), or the resolution is not wheels from the index and the uploaded wheels only.
    """
    requirements = [check_requirement(r) for r in requirements]
    wheels = [Path(w) for w in wheels]
    report = box.root / "report.json"
    captured: list[str] = []

    def tee(line: str) -> None:
        captured.append(line)
        log(line)

    cmd = [*_pip_base(), "--dry-run", "--ignore-installed", "--target", str(box.root / "unused"),
           "--report", str(report), *pip_target_args(), *requirements, *map(str, wheels)]
    rc = _run(cmd, tee, timeout, box)
    if rc != 0 or not report.exists():
        raise BuildError("pip could not resolve the package list: " + (_tail_error(captured) or f"exit {rc}"))
    data = _read_report(report)
    wheel_urls = {w.resolve().as_uri(): w for w in wheels}
    out: list[LockEntry] = []
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        info = item.get("download_info", {})
        url = info.get("url", "")
        name = meta.get("name") or "?"
        archive = info.get("archive_info")
        if archive is None or "dir_info" in info or "vcs_info" in info:
            raise BuildError(f"{name} resolved to a directory or a repository ({url}); only wheels are installed.")
        if not url.split("#", 1)[0].endswith(".whl"):
            raise BuildError(f"{name} resolved to a non-wheel file ({url}); only wheels are installed.")
        if item.get("is_direct") and url.split("#", 1)[0] not in wheel_urls:
            raise BuildError(f"{name} resolved to a direct reference ({url}); only the package index "
                             "and uploaded wheels are allowed.")
        if not url.startswith(("https://", "http://", "file://")):
            raise BuildError(f"{name} resolved to {url}; only the package index and uploaded wheels are allowed.")
        hashes = archive.get("hashes") or {}
        sha = hashes.get("sha256", "")
        if not sha and "=" in archive.get("hash", ""):
            algo, _, value = archive["hash"].partition("=")
            sha = value if algo == "sha256" else ""
        if not sha and url.startswith("file://"):
            sha = hashlib.sha256(_local_file(url, box).read_bytes()).hexdigest()
        if not sha:
            raise BuildError(f"{name}: the package index gave no sha256 for {url}")
        out.append(LockEntry(
            name=canonicalize_name(meta.get("name", "")), version=str(meta.get("version", "")),
            sha256=sha, url=url.split("#", 1)[0], requested=bool(item.get("requested")),
            source="wheel" if url.split("#", 1)[0] in wheel_urls else "index",
        ))
    out.sort(key=lambda e: e.name)
    return out


def layer_id_of(lock: Iterable[LockEntry]) -> str:
    """Hash of what decides the layer's content (not of where the files came from)."""
    doc = {"builder": BUILDER_VERSION, "python": list(PYTHON_VERSION), "platforms": platforms(),
           "lock": sorted([e.name, e.version, e.sha256] for e in lock)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def installed_distributions(site_dir: Path) -> dict[str, str]:
    """{normalized name: version} of the dist-infos under `site_dir`."""
    found: dict[str, str] = {}
    for d in site_dir.glob("*.dist-info"):
        meta = d / "METADATA"
        if not meta.exists():
            continue
        headers = HeaderParser().parsestr(meta.read_text(errors="replace"), headersonly=True)
        found[canonicalize_name(headers.get("Name", ""))] = headers.get("Version", "")
    return found


def top_level_modules(site_dir: Path) -> list[str]:
    """Importable top-level names in `site_dir` (packages, namespace dirs, modules, extensions)."""
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES + [".py"], key=len, reverse=True)
    names: set[str] = set()
    for entry in site_dir.iterdir():
        n = entry.name
        if n in SKIP_TOP or n.endswith((".dist-info", ".data", ".egg-info", ".libs")):
            continue
        if entry.is_dir():
            if n.isidentifier():
                names.add(n)
        else:
            for suf in suffixes:
                if n.endswith(suf) and n[: -len(suf)].isidentifier():
                    names.add(n[: -len(suf)])
                    break
            else:
                if n.endswith(".so") and n.split(".", 1)[0].isidentifier():
                    names.add(n.split(".", 1)[0])
    return sorted(names)


def _tree_usage(root: Path) -> tuple[int, int]:
    blocks = inodes = 0
    for dirpath, dirnames, filenames in os.walk(root):
        inodes += 1 + len(filenames)
        blocks += 1
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            blocks += (st.st_size + 4095) // 4096 + 1
    return blocks * 4096, inodes


def make_image(site_dir: Path, image: Path, log: Callable[[str], None]) -> None:
    """ext4 image (no journal) of `site_dir`, for attaching read-only to the VMs.

    :raises BuildError: when mke2fs is missing or fails.
    """
    mke2fs = shutil.which("mke2fs") or ("/usr/sbin/mke2fs" if os.path.exists("/usr/sbin/mke2fs") else None) \
        or ("/sbin/mke2fs" if os.path.exists("/sbin/mke2fs") else None)
    if not mke2fs:
        raise BuildError("mke2fs (e2fsprogs) is not installed; it builds the layer image for the VMs")
    used, inodes = _tree_usage(site_dir)
    inodes = int(inodes * 1.25) + 1024
    size_mib = (int(used * 1.15) + inodes * 256) // (1024 * 1024) + 16
    cmd = [mke2fs, "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0", "-N", str(inodes),
           "-L", IMAGE_LABEL, "-E", "root_owner=0:0", "-d", str(site_dir), str(image), f"{size_mib}M"]
    lines: list[str] = []

    def tee(line: str) -> None:
        lines.append(line)
        log(line)

    if _run(cmd, tee, 600) != 0:
        raise BuildError("mke2fs failed to build the layer image: " + _tail_error(lines))
    os.chmod(image, 0o644)


def strip_test_suites(site_dir: Path) -> int:
    """Delete the test suites packages ship inside themselves (`<pkg>/**/tests/`, e.g. pandas/tests:
    a fifth of the default layer); top-level directories are never touched. Returns bytes freed."""
    freed = 0
    for top in site_dir.iterdir():
        if not top.is_dir() or not top.name.isidentifier():
            continue
        for dirpath, dirnames, _ in os.walk(top):
            for d in list(dirnames):
                if d == "tests":
                    path = os.path.join(dirpath, d)
                    freed += _tree_usage(Path(path))[0]
                    shutil.rmtree(path)
                    dirnames.remove(d)
    return freed


def _make_readonly_tree(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, 0o755 if st.st_mode & 0o111 else 0o644)


def load_layer(root: Path) -> BuiltLayer | None:
    """A complete layer directory as a BuiltLayer (None when absent or incomplete)."""
    try:
        meta = json.loads((root / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    image = root / IMAGE
    return BuiltLayer(
        layer_id=root.name, root=root, site_dir=root / SITE,
        image_path=image if image.exists() else None,
        lock=tuple(LockEntry(**e) for e in meta["lock"]), modules=tuple(meta["modules"]),
        size_bytes=int(meta.get("size_bytes", 0)), reused=True,
    )


def build_layer(requirements: list[str], wheels: Iterable[Path], cache_dir: Path, *,
                log: Callable[[str], None] = lambda line: None,
                phase: Callable[[str], None] = lambda name: None,
                with_image: bool = True, strip_tests: bool = True, timeout: float = 1800) -> BuiltLayer:
    """Resolve and install `requirements` (pip requirement strings) and `wheels` (files) into a
    layer under `<cache_dir>/layers/`, reusing an identical one.

    :raises BuildError: resolution, download, install or imaging failed (nothing is left behind).
    """
    base = layers_dir(cache_dir)
    base.mkdir(parents=True, exist_ok=True)
    wheels = [Path(w) for w in wheels]
    if not requirements and not wheels:
        log("No packages are enabled: the layer is empty.")
    with open(base / ".build.lock", "w") as lock_fh:
        phase("waiting for another build")
        fcntl.flock(lock_fh, fcntl.LOCK_EX)
        work = base / f".build-{os.getpid()}-{secrets.token_hex(4)}"
        work.mkdir()
        try:
            try:
                box = BuildBox.create(work / BOX)
            except BoxError as exc:
                raise BuildError(f"cannot isolate pip: {exc}") from None
            boxed_wheels = _copy_wheels(wheels, box)
            phase("resolving")
            lock = resolve(requirements, boxed_wheels, log, box, timeout=timeout) if (requirements or wheels) else []
            for e in lock:
                log(f"  lock: {e.name}=={e.version}{'' if e.requested else '  (dependency)'}")
            layer_id = layer_id_of(lock)
            root = base / layer_id
            existing = load_layer(root)
            if existing is not None and (existing.image_path is not None or not with_image):
                log(f"Layer {layer_id} is already built: reusing it.")
                return existing
            if root.exists():
                shutil.rmtree(root)
            site = box.root / SITE
            site.mkdir()
            os.chown(site, box.uid, box.uid)
            if lock:
                phase("installing")
                urls = [f"{e.url}#sha256={e.sha256}" if e.sha256 else e.url for e in lock]
                captured: list[str] = []

                def tee(line: str) -> None:
                    captured.append(line)
                    log(line)

                cmd = [*_pip_base(), "--no-deps", "--target", str(site), *pip_target_args(), *urls]
                rc = _run(cmd, tee, timeout, box)
                if rc != 0:
                    raise BuildError("pip failed to install the resolved packages: "
                                     + (_tail_error(captured) or f"exit {rc}"))
            phase("checking")
            try:
                box.reclaim(site)
            except BoxError as exc:
                raise BuildError(str(exc)) from None
            os.rename(site, work / SITE)
            shutil.rmtree(box.root)
            site = work / SITE
            installed = installed_distributions(site)
            expected = {e.name: e.version for e in lock}
            if installed != expected:
                missing = sorted(set(expected) - set(installed))
                extra = sorted(set(installed) - set(expected))
                raise BuildError(f"installed set differs from the lock (missing {missing}, unexpected {extra})")
            if strip_tests:
                freed = strip_test_suites(site)
                log(f"Removed bundled test suites: {freed / 1e6:.1f} MB.")
            modules = top_level_modules(site)
            log(f"Importable modules: {', '.join(modules) or '(none)'}")
            _make_readonly_tree(site)
            size, _ = _tree_usage(site)
            image = None
            if with_image:
                phase("imaging")
                image = work / IMAGE
                make_image(site, image, log)
            (work / LOCK).write_text(json.dumps([e.to_dict() for e in lock], indent=1))
            (work / COMPLETE).write_text(json.dumps({
                "lock": [e.to_dict() for e in lock], "modules": modules, "size_bytes": size,
            }))
            os.chmod(work, 0o755)
            os.rename(work, root)
            log(f"Layer {layer_id} built: {len(lock)} distributions, {size / 1e6:.1f} MB.")
            return BuiltLayer(layer_id=layer_id, root=root, site_dir=root / SITE,
                              image_path=(root / IMAGE) if image else None, lock=tuple(lock),
                              modules=tuple(modules), size_bytes=size)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)


def _copy_wheels(wheels: list[Path], box: BuildBox) -> list[Path]:
    """Uploaded wheels, checked again and copied into the box (which cannot see where they are stored).

    :raises BuildError: a wheel is not acceptable (e.g. it depends on something by URL).
    """
    if not wheels:
        return []
    dest = box.root / "wheels"
    dest.mkdir(mode=0o755)
    out = []
    for w in wheels:
        try:  # again at build time: a wheel stored before a check existed must not reach pip either
            validate_wheel(w.name, w.read_bytes(), max_bytes=1 << 40)
        except WheelError as exc:
            raise BuildError(str(exc)) from None
        target = dest / w.name
        if target.exists():
            raise BuildError(f"two uploaded wheels are both named {w.name}")
        shutil.copyfile(w, target)
        os.chmod(target, 0o644)
        out.append(target)
    return out


def prune_layers(cache_dir: Path, keep: Iterable[str]) -> list[str]:
    """Delete built layers whose id is not in `keep`; returns the removed ids.

    Safe for running executions: a bind mount or an open image keeps its files alive.
    """
    base = layers_dir(cache_dir)
    keep = set(keep)
    removed = []
    if not base.is_dir():
        return removed
    for d in base.iterdir():
        if d.is_dir() and not d.name.startswith(".") and d.name not in keep and (d / COMPLETE).exists():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed
