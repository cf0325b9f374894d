"""The package layer: which Python packages the sandbox offers, as built by `runtimes/`.

Standard library only (drivers, the sandbox service and the guest-image tooling import it).

A *layer* is a directory of installed distributions (`pip install --target`) plus, for the
libvirt driver, an ext4 image of the same tree. The runtime builder writes the active one to
`<cache_dir>/layers/active.json`:

    {"runtime_id": 7, "layer_dir": ".../layers/<hash>/site",
     "image_path": ".../layers/<hash>/packages.img", "modules": ["numpy", "pandas", ...]}

Drivers read it with `active_layer(config)` whenever they start an execution (process driver)
or refill a warm slot (libvirt), so a new runtime is picked up without a restart while
executions already running finish on the layer they started with. Inside every sandbox the
layer is mounted read-only at PACKAGES_MOUNT and put on `sys.path` (PYTHONPATH); the
interpreter's own dist-packages directories are hidden so nothing else is importable.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES_MOUNT = "/opt/stepwell/packages"   # where the layer appears inside every sandbox
IMAGE_LABEL = "stwpkgs"                     # ext4 volume label of the layer image
ACTIVE_FILE = "active.json"

# Host directories whose third-party packages must not leak into a process-driver sandbox
# (they are covered with an empty tmpfs there). The guest image simply does not install any.
HOST_SITE_DIRS = (
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3.11/dist-packages",
    "/usr/local/lib/python3.11/dist-packages",
    "/usr/local/lib/python3.11/site-packages",
)


class LayerMissing(ValueError):
    """An execution named a package layer this sandbox host cannot offer."""


@dataclass(frozen=True)
class Layer:
    """One built package layer, as activated by the runtime builder."""

    runtime_id: int
    layer_dir: Path                  # tree to bind read-only at PACKAGES_MOUNT (process driver)
    image_path: Path | None          # ext4 image of that tree (libvirt driver), None if not built
    modules: tuple[str, ...] = field(default_factory=tuple)   # importable top-level names

    def to_dict(self) -> dict:
        return {
            "runtime_id": self.runtime_id,
            "layer_dir": str(self.layer_dir),
            "image_path": str(self.image_path) if self.image_path else None,
            "modules": list(self.modules),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Layer":
        if not isinstance(d, dict):
            raise ValueError("active layer file must hold a JSON object")
        rid = d.get("runtime_id")
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise ValueError(f"runtime_id must be an integer, got {rid!r}")
        layer_dir = d.get("layer_dir")
        if not isinstance(layer_dir, str) or not os.path.isabs(layer_dir):
            raise ValueError(f"layer_dir must be an absolute path, got {layer_dir!r}")
        image = d.get("image_path")
        if image is not None and (not isinstance(image, str) or not os.path.isabs(image)):
            raise ValueError(f"image_path must be an absolute path or null, got {image!r}")
        modules = d.get("modules") or []
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise ValueError("modules must be a list of strings")
        return cls(runtime_id=rid, layer_dir=Path(layer_dir),
                   image_path=Path(image) if image else None, modules=tuple(modules))


def layers_dir(cache_dir: str | os.PathLike) -> Path:
    """Directory holding every built layer (`<hash>/`) and the active pointer."""
    return Path(cache_dir) / "layers"


def _cache_dir_of(config) -> Path:
    if config is None:
        from sandbox.config import SandboxConfig

        config = SandboxConfig.from_env()
    return Path(getattr(config, "cache_dir", config))


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple, Layer | None]] = {}


def active_layer(config=None) -> Layer | None:
    """The active layer, or None when no runtime was activated (or its files are gone).

    `config` is a SandboxConfig, a cache directory, or None (SandboxConfig.from_env()).
    Cheap to call per execution: the file is parsed again only when its mtime/size changes.
    """
    path = layers_dir(_cache_dir_of(config)) / ACTIVE_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _cache.get(path)
        if hit and hit[0] == key:
            layer = hit[1]
            return layer if layer is None or layer.layer_dir.is_dir() else None
    try:
        layer = Layer.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        layer = None
    with _cache_lock:
        _cache[path] = (key, layer)
    if layer is not None and not layer.layer_dir.is_dir():
        return None
    return layer


def layer_for(request, config=None) -> Layer | None:
    """The layer `request` runs on: the one it names (`ExecutionRequest.layer`, a session pool
    pinned to a runtime), else the active one.

    :raises LayerMissing: the named layer is outside this cache's layers folder or gone from it.
    """
    if request.layer is None:
        return active_layer(config)
    layer = Layer.from_dict(request.layer)
    root = layers_dir(_cache_dir_of(config)).resolve()
    for path in (layer.layer_dir, layer.image_path):
        if path is not None and not path.resolve().is_relative_to(root):
            raise LayerMissing(f"the layer of runtime #{layer.runtime_id} is not under this sandbox's "
                               f"layers folder {root}")
    if not layer.layer_dir.is_dir():
        raise LayerMissing(f"the layer of runtime #{layer.runtime_id} is not on this sandbox host "
                           "(pruned or built elsewhere): build the runtime again")
    return layer


def write_active_layer(cache_dir: str | os.PathLike, layer: Layer) -> Path:
    """Atomically replace the active pointer (write a temporary file, fsync, rename)."""
    d = layers_dir(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    target = d / ACTIVE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".active.", suffix=".json", dir=d)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(layer.to_dict(), fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return target


def clear_active_layer(cache_dir: str | os.PathLike) -> None:
    """Remove the active pointer (no third-party packages in the sandbox afterwards)."""
    try:
        (layers_dir(cache_dir) / ACTIVE_FILE).unlink()
    except FileNotFoundError:
        pass


_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 1, 32, 4096
_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_expose_lock = threading.Lock()


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _mount_points() -> set[str]:
    """Mount points of this mount namespace (os.path.ismount misses same-filesystem binds)."""
    points = set()
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 4:
                    points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4]))
    except OSError:
        pass
    return points


def is_mount_point(path: str | os.PathLike) -> bool:
    return os.path.realpath(path) in _mount_points()


def exposed_path(layer: Layer, under: str | os.PathLike) -> Path:
    """Where `expose_layer` mounts `layer` under `under` (one mount point per runtime and layer)."""
    return Path(under) / "layers" / f"{layer.runtime_id}-{layer.layer_dir.parent.name}"


def expose_layer(layer: Layer, under: str | os.PathLike) -> Path:
    """Bind-mount the layer read-only at `<under>/layers/<runtime_id>-<layer id>` and return it.

    For the process driver, which runs bubblewrap as an unprivileged uid: that uid cannot reach
    the layer inside root's cache directory (`/root` is 0700), but can reach the driver's own
    0711/0755 share directory. Root-only; idempotent (an existing mount is reused).

    :raises OSError: the mount failed.
    """
    import ctypes

    target = exposed_path(layer, under)
    with _expose_lock:
        if is_mount_point(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        target.mkdir(exist_ok=True)
        libc = _libc()
        src, dst = os.fsencode(layer.layer_dir), os.fsencode(target)
        if libc.mount(src, dst, None, _MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bind-mount {layer.layer_dir} on {target}: {os.strerror(err)}")
        flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        if libc.mount(None, dst, None, flags, None) != 0:
            err = ctypes.get_errno()
            libc.umount2(dst, _MNT_DETACH)
            raise OSError(err, f"remount {target} read-only: {os.strerror(err)}")
    return target


def unexpose_layers(under: str | os.PathLike, keep: Path | None = None) -> int:
    """Detach every exposed layer under `<under>/layers` except `keep`; returns how many.

    Lazy (MNT_DETACH): sandboxes still using one keep it until they exit.
    """
    base = Path(under) / "layers"
    count = 0
    if not base.is_dir():
        return 0
    libc = _libc()
    with _expose_lock:
        for d in base.iterdir():
            if keep is not None and d == Path(keep):
                continue
            while is_mount_point(d):  # stacked mounts: detach them all
                if libc.umount2(os.fsencode(d), _MNT_DETACH) != 0:
                    break
                count += 1
            try:
                d.rmdir()
            except OSError:
                pass
    return count


def process_bwrap_args(layer: Layer | None, source: str | os.PathLike | None = None) -> list[str]:
    """bubblewrap arguments that give a process-driver sandbox exactly this layer.

    Append them after the driver's own mounts (after `--ro-bind /usr /usr` and `--clearenv`):
    host dist-packages are covered with empty tmpfs mounts, the layer is bound read-only at
    PACKAGES_MOUNT and PYTHONPATH points there. With `layer=None` only the hiding applies.
    `source` is where bubblewrap finds the layer (default `layer.layer_dir`; for an
    unprivileged bubblewrap pass the path `expose_layer` returned).
    """
    args: list[str] = []
    for d in HOST_SITE_DIRS:
        if os.path.isdir(d):
            args += ["--perms", "0555", "--tmpfs", d]
    if layer is not None:
        args += ["--ro-bind", str(source or layer.layer_dir), PACKAGES_MOUNT,
                 "--setenv", "PYTHONPATH", PACKAGES_MOUNT,
                 "--setenv", "STEPWELL_RUNTIME_ID", str(layer.runtime_id)]
    return args
