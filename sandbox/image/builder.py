"""Builds the sandbox guest image: kernel (ELF vmlinux for PVH boot), initramfs, root ext4.

No Django here: `python -m sandbox.image` and the `sandbox_build_image` management command both
call build_image(). Images live in <cache_dir>/images/<recipe id>/, where the recipe id is the
sha256 of everything that determines the image (this builder, init, the guest agent package
with the harness, outcome and protocol modules it imports, the package lists). A build runs in a temporary directory beside
it and is renamed into place, so a half-built image is never used. Downloaded .deb files are
kept in <cache_dir>/debs so a rebuild after a recipe change does not download again.

Steps (no mounting, no loop devices):
 1. debootstrap --variant=minbase with python3 only (packages come from the runtime's layer)
 2. fetch Debian's linux-image-cloud-amd64 .deb (apt-get download, cached) and unpack it
 3. decompress the LZ4 frame inside vmlinuz to an ELF vmlinux (QEMU boots it through PVH)
 4. install the guest agent (sandbox/guest and the stdlib-only modules it imports, as the
    package `sandbox` under /opt/stepwell), byte-compile, trim the tree
 5. busybox-static initramfs with the virtio modules and init.sh as /init
 6. mke2fs -t ext4 -d rootfs (read-only root image shared by every VM)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Only the interpreter: third-party packages come from the runtime's package layer (runtimes/),
# attached as a second read-only disk, so only the staff allow-list is importable.
PACKAGES = ("python3",)
KERNEL_PACKAGE = "linux-image-cloud-amd64"
# Load order matters: each module needs the ones before it.
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci", "virtio_blk", "virtio_console")
KERNEL_CMDLINE = ("console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init mitigations=off "
                  "nokaslr 8250.nr_uarts=1 i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable "
                  "init_on_free=1")
LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "usr/share/lintian", "usr/include", "usr/lib/gcc", "var/cache/apt", "var/lib/apt/lists",
        "var/log", "usr/share/perl", "usr/lib/x86_64-linux-gnu/perl")
MANIFEST = "manifest.json"

_SANDBOX = Path(__file__).resolve().parent.parent
GUEST_DIR = "opt/stepwell"  # the guest's copy of the package `sandbox` (its stdlib-only part)
GUEST_FILES = (  # files of sandbox/ copied to GUEST_DIR/sandbox/ (the agent and what it imports)
    "__init__.py", "harness.py", "outcome.py", "protocol.py",
    "egress/__init__.py", "egress/policy.py", "egress/forwarder.py", "egress/mux.py", "egress/muxloop.py",
) + tuple(sorted(f"guest/{p.name}" for p in (_SANDBOX / "guest").glob("*.py")))
RECIPE_FILES = (
    "image/__init__.py", "image/__main__.py", "image/builder.py", "guest/init.sh",
) + GUEST_FILES


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and the tail of its output."""


@dataclass(frozen=True)
class GuestImage:
    id: str
    dir: Path
    kernel: Path
    initrd: Path
    rootfs: Path
    cmdline: str

    @classmethod
    def load(cls, directory: Path) -> "GuestImage":
        m = json.loads((directory / MANIFEST).read_text())
        return cls(id=m["id"], dir=directory, kernel=directory / m["kernel"],
                   initrd=directory / m["initrd"], rootfs=directory / m["rootfs"],
                   cmdline=m["cmdline"])


def recipe_id() -> str:
    h = hashlib.sha256()
    for rel in RECIPE_FILES:
        h.update(rel.encode() + b"\0")
        h.update((_SANDBOX / rel).read_bytes())
        h.update(b"\0")
    h.update(json.dumps([base_id(), KERNEL_PACKAGE, MODULES, KERNEL_CMDLINE]).encode())
    return h.hexdigest()


def images_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "images"


def find_image(cache_dir: Path) -> GuestImage | None:
    """The built image for the current recipe, or None."""
    d = images_dir(cache_dir) / recipe_id()
    if (d / MANIFEST).is_file():
        return GuestImage.load(d)
    return None


class Progress:
    """Prints `[n/m] step ... done in X s (total Y s)` and a heartbeat for long steps."""

    def __init__(self, total: int, out=None):
        self.total = total
        self.n = 0
        self.t0 = time.monotonic()
        self.out = out or sys.stderr
        self.last_line = ""
        self._stop: threading.Event | None = None

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def step(self, title: str):
        prog = self

        class _Ctx:
            def __enter__(self_inner):
                prog.n += 1
                prog.last_line = ""
                self_inner.t = time.monotonic()
                prog._print(f"[{prog.n}/{prog.total}] {title} ...")
                prog._stop = threading.Event()
                threading.Thread(target=prog._beat, args=(prog._stop, self_inner.t),
                                 daemon=True).start()
                return prog

            def __exit__(self_inner, et, ev, tb):
                prog._stop.set()
                now = time.monotonic()
                state = "done" if et is None else "FAILED"
                prog._print(f"[{prog.n}/{prog.total}] {title}: {state} in {now - self_inner.t:.1f} s "
                            f"(elapsed {now - prog.t0:.1f} s)")
                return False

        return _Ctx()

    def _beat(self, stop: threading.Event, t: float) -> None:
        while not stop.wait(10):
            tail = f" | {self.last_line[:90]}" if self.last_line else ""
            self._print(f"      ... {time.monotonic() - t:.0f} s{tail}")


def _run(cmd: list[str], progress: Progress | None = None, log=None, **kw) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", **kw)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if log is not None:
            log.write(line + "\n")
        if progress is not None and line:
            progress.last_line = line
        tail = (tail + [line])[-15:]
    if proc.wait() != 0:
        raise ImageBuildError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}):\n"
                              + "\n".join(tail))


def _need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if not path:
        raise ImageBuildError(f"{tool} is not installed (see scripts/install-system.sh)")
    return path


def _kernel_deb(deb_dir: Path, progress: Progress, log) -> Path:
    kdir = deb_dir / "kernel"
    kdir.mkdir(parents=True, exist_ok=True)
    real = None
    try:
        out = subprocess.run(["apt-cache", "depends", KERNEL_PACKAGE], capture_output=True,
                             text=True, check=True).stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Depends:") and "linux-image-" in line:
                real = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.CalledProcessError):
        real = None
    if real:
        cached = sorted(kdir.glob(f"{real}_*.deb"))
        if cached:
            return cached[-1]
        _run(["apt-get", "download", real], progress, log, cwd=kdir)
        cached = sorted(kdir.glob(f"{real}_*.deb"))
        if cached:
            return cached[-1]
    cached = sorted(kdir.glob("linux-image-*-cloud-amd64_*.deb"))
    if cached:  # offline: newest one we have
        return cached[-1]
    raise ImageBuildError(f"could not download {KERNEL_PACKAGE} (is `apt-get update` done?)")


def _extract_vmlinux(vmlinuz: Path, dest: Path) -> None:
    data = vmlinuz.read_bytes()
    if data[:4] == b"\x7fELF":
        dest.write_bytes(data)
        return
    i = data.find(LZ4_LEGACY_MAGIC)
    if i < 0:
        raise ImageBuildError(f"{vmlinuz.name}: no LZ4 frame found (not an LZ4 bzImage?)")
    with open(dest, "wb") as out:
        # lz4 exits 1 on the trailing bytes after the frame; the output is complete anyway.
        subprocess.run([_need("lz4"), "-dc"], input=data[i:], stdout=out, stderr=subprocess.DEVNULL)
    with open(dest, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            raise ImageBuildError("decompressed kernel is not an ELF image")


def _make_initramfs(kroot: Path, work: Path, dest: Path) -> None:
    ird = work / "initramfs"
    for d in ("bin", "dev", "proc", "sys", "newroot", "lib/modules"):
        (ird / d).mkdir(parents=True, exist_ok=True)
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise ImageBuildError("busybox-static is not installed")
    shutil.copy2(busybox, ird / "bin/busybox")
    (ird / "bin/sh").symlink_to("busybox")
    mods = {p.stem: p for p in (kroot / "lib/modules").rglob("*.ko")}
    for name in MODULES:
        if name not in mods:
            raise ImageBuildError(f"kernel module {name}.ko not found in the kernel package")
        shutil.copy2(mods[name], ird / "lib/modules" / f"{name}.ko")
    shutil.copy2(_SANDBOX / "guest/init.sh", ird / "init")
    os.chmod(ird / "init", 0o755)
    files = subprocess.run(["find", "."], cwd=ird, capture_output=True, check=True).stdout
    with open(dest, "wb") as out:
        subprocess.run([_need("cpio"), "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=ird,
                       input=files, stdout=out, check=True)


def _prepare_base(root: Path, progress: Progress, log) -> None:
    """Agent-independent finishing of the debootstrapped tree (cached as the base rootfs)."""
    for d in ("mnt/data", "tmp", "run", "proc", "sys", "dev", "opt/stepwell", "opt/stepwell/packages"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("sandbox\n")
    for rel in TRIM:
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            if rel.startswith("var/"):
                p.mkdir(parents=True, exist_ok=True)


def _install_guest(root: Path, progress: Progress, log) -> None:
    for src in GUEST_FILES:
        target = root / GUEST_DIR / "sandbox" / src
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_SANDBOX / src, target)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    _run(["chroot", str(root), "python3", "-m", "compileall", "-q", "/opt/stepwell"],
         progress, log, env=env)


def base_id() -> str:
    """Identity of the agent-independent root tree (debootstrap + font cache + trim)."""
    return hashlib.sha256(json.dumps(["base-v2", SUITE, PACKAGES, TRIM]).encode()).hexdigest()


def _base_rootfs(cache_dir: Path, deb_dir: Path, mirror: str, progress: Progress, log) -> Path:
    """The cached base root tree, built (debootstrap) when missing."""
    base = Path(cache_dir) / "base" / base_id()[:16]
    if (base / "rootfs/usr/bin/python3").exists() and (base / "complete").exists():
        progress.last_line = f"using cached base rootfs {base}"
        progress._print(f"      using cached base root tree {base}")
        return base / "rootfs"
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=base.parent))
    try:
        _run([_need("debootstrap"), "--variant=minbase", f"--cache-dir={deb_dir}",
              f"--include={','.join(PACKAGES)}", SUITE, str(tmp / "rootfs"), mirror],
             progress, log)
        _prepare_base(tmp / "rootfs", progress, log)
        (tmp / "complete").write_text("ok\n")
        if base.exists():
            shutil.rmtree(base)
        tmp.rename(base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return base / "rootfs"


def _du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sxb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def build_image(cache_dir: Path, force: bool = False, out=None,
                mirror: str | None = None) -> GuestImage:
    """Build (or find) the guest image for the current recipe and return it."""
    cache_dir = Path(cache_dir)
    rid = recipe_id()
    final = images_dir(cache_dir) / rid
    progress = Progress(7, out)
    if not force:
        found = find_image(cache_dir)
        if found:
            progress._print(f"guest image {rid[:12]} is up to date: {final}")
            return found
    if os.geteuid() != 0:
        raise ImageBuildError("building the guest image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mke2fs", "cpio", "lz4", "dpkg-deb"):
        _need(tool)
    mirror = mirror or os.environ.get("SANDBOX_DEBIAN_MIRROR") or DEFAULT_MIRROR
    deb_dir = cache_dir / "debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    images_dir(cache_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".build-{rid[:12]}-", dir=images_dir(cache_dir)))
    out_dir = work / "image"
    out_dir.mkdir()
    root = work / "rootfs"
    log_path = work / "build.log"
    progress._print(f"building guest image {rid[:12]} in {work} (log: {log_path})")
    try:
        with open(log_path, "w") as log:
            with progress.step(f"base root tree: debootstrap {SUITE} minbase + "
                               f"{', '.join(PACKAGES[1:])} (cached)"):
                base = _base_rootfs(cache_dir, deb_dir, mirror, progress, log)
                _run(["cp", "-a", "--reflink=auto", str(base), str(root)], progress, log)
            with progress.step(f"fetch {KERNEL_PACKAGE}"):
                deb = _kernel_deb(deb_dir, progress, log)
                kroot = work / "kernel"
                _run([_need("dpkg-deb"), "-x", str(deb), str(kroot)], progress, log)
                vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))
                if not vmlinuz:
                    raise ImageBuildError(f"{deb.name} has no /boot/vmlinuz")
            with progress.step("decompress LZ4 kernel to ELF vmlinux (PVH boot)"):
                _extract_vmlinux(vmlinuz[0], out_dir / "vmlinux")
            with progress.step("install guest agent"):
                _install_guest(root, progress, log)
            with progress.step("initramfs (busybox + virtio modules)"):
                _make_initramfs(kroot, work, out_dir / "initrd.cpio")
            with progress.step("root image (mke2fs -d, ext4, no journal)"):
                size_mib = int(_du_bytes(root) * 1.15 / 2**20) + 64
                _run([_need("mke2fs"), "-q", "-F", "-t", "ext4", "-O", "^has_journal",
                      "-E", "root_owner=0:0", "-L", "stepwell", "-d", str(root),
                      str(out_dir / "rootfs.ext4"), f"{size_mib}M"], progress, log)
                os.chmod(out_dir / "rootfs.ext4", 0o444)
            with progress.step("manifest and atomic install"):
                manifest = {
                    "id": rid, "kernel": "vmlinux", "initrd": "initrd.cpio",
                    "rootfs": "rootfs.ext4", "cmdline": KERNEL_CMDLINE,
                    "kernel_package": deb.name, "packages": list(PACKAGES),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(time.monotonic() - progress.t0, 1),
                }
                (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
                shutil.copy2(log_path, out_dir / "build.log")
                old = None
                if final.exists():
                    old = final.with_name(final.name + f".old-{os.getpid()}")
                    final.rename(old)
                out_dir.rename(final)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        progress._print(f"build failed; log kept at {log_path}")
        shutil.rmtree(root, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    progress._print(f"guest image ready: {final} ({time.monotonic() - progress.t0:.1f} s)")
    return GuestImage.load(final)


def prune_images(cache_dir: Path, keep: str) -> list[Path]:
    """Remove guest images other than `keep`, saved VM states made from them, and stale
    temporary build directories. Do not run while a sandbox service uses an older image."""
    removed: list[Path] = []
    base = images_dir(cache_dir)
    if base.is_dir():
        for p in base.iterdir():
            if p.name != keep and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    saves = Path(cache_dir) / "saves"
    if saves.is_dir():
        for p in saves.iterdir():
            if p.is_dir() and keep[:16] not in p.name:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    bases = Path(cache_dir) / "base"
    if bases.is_dir():
        for p in bases.iterdir():
            if p.is_dir() and p.name != base_id()[:16]:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed
