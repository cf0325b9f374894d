"""The host: the libvirt connection (the only place where libvirt.libvirtError is caught) and
the probes of the host machine (hardware virtualisation, QEMU's version, transparent huge
pages, whether a process is alive, a process's CPU time).

Every libvirt call of the sandbox goes through `Host`; errors come out as SandboxError
subclasses (sandbox.contract), so the driver and pool never see libvirt's exception type.
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import xml.etree.ElementTree as ET

from sandbox.contract import SandboxError, SandboxUnavailable

try:
    import libvirt  # the libvirt-python binding (absolute import: not this package)
except ImportError:  # pragma: no cover - reported when a Host is opened
    libvirt = None

log = logging.getLogger("sandbox.libvirt")


class LibvirtOperationError(SandboxError):
    """A libvirt operation failed (message carries libvirt's text)."""


class DomainNotFound(LibvirtOperationError):
    """The domain is gone (destroyed, powered off, or never existed)."""


class RestoreRejected(LibvirtOperationError):
    """libvirt refused to restore a save file (wrong UUID, corrupt or incompatible file)."""


def _silence(_ctx, _err) -> None:  # libvirt prints every error to stderr by default
    pass


class Host:
    """A (re)connecting qemu libvirt connection, safe to share between threads."""

    def __init__(self, uri: str = "qemu:///system"):
        if libvirt is None:
            raise SandboxUnavailable("libvirt-python is not installed")
        self.uri = uri
        self._lock = threading.Lock()
        self._conn = None
        libvirt.registerErrorHandler(_silence, None)

    # ---------------------------------------------------------------------- plumbing ---
    def _translate(self, exc, what: str) -> SandboxError:
        code = exc.get_error_code()
        msg = f"{what}: {exc.get_error_message() or exc}"
        if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID) and \
                "not running" in msg or code == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainNotFound(msg)
        if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT,
                    libvirt.VIR_ERR_INTERNAL_ERROR) and self._conn_broken():
            return SandboxUnavailable(msg)
        if "restore" in what:
            return RestoreRejected(msg)
        return LibvirtOperationError(msg)

    def _conn_broken(self) -> bool:
        with self._lock:
            c = self._conn
        try:
            return c is None or not c.isAlive()
        except libvirt.libvirtError:
            return True

    def conn(self):
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise SandboxUnavailable(
                    f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()} "
                    "(is libvirtd running? scripts/start-libvirtd.sh)") from None
            return self._conn

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, what) from None

    # ------------------------------------------------------------------------ domains ---
    def create(self, xml: str, autodestroy: bool = True) -> None:
        flags = libvirt.VIR_DOMAIN_START_AUTODESTROY if autodestroy else 0
        c = self.conn()
        self._call("create domain", c.createXML, xml, flags)

    def restore(self, path: str, xml: str | None = None) -> None:
        c = self.conn()
        self._call(f"restore {path}", c.restoreFlags, path, xml,
                   libvirt.VIR_DOMAIN_SAVE_RUNNING)

    def save(self, name: str, path: str) -> None:
        dom = self._lookup(name)
        self._call(f"save {name}", dom.saveFlags, path, None, libvirt.VIR_DOMAIN_SAVE_RUNNING)

    def destroy(self, name: str) -> bool:
        """Destroy a running domain; False when it was already gone."""
        try:
            dom = self._lookup(name)
            self._call(f"destroy {name}", dom.destroy)
            return True
        except DomainNotFound:
            return False
        except LibvirtOperationError as exc:
            if "not running" in str(exc):
                return False
            raise

    def undefine(self, name: str) -> None:
        try:
            dom = self._lookup(name)
            self._call(f"undefine {name}", dom.undefine)
        except DomainNotFound:
            pass

    def _lookup(self, name: str):
        c = self.conn()
        return self._call(f"lookup {name}", c.lookupByName, name)

    def is_running(self, name: str) -> bool:
        try:
            dom = self._lookup(name)
            return bool(self._call(f"state {name}", dom.isActive))
        except DomainNotFound:
            return False

    def state(self, name: str) -> str:
        """'running', 'paused', 'shutoff', ... or 'gone'."""
        try:
            dom = self._lookup(name)
            st, _reason = self._call(f"state {name}", dom.state)
        except DomainNotFound:
            return "gone"
        names = {
            libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
            libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown", libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
            libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_BLOCKED: "blocked",
        }
        return names.get(st, f"state-{st}")

    def xml(self, name: str) -> str:
        dom = self._lookup(name)
        return self._call(f"xml {name}", dom.XMLDesc, 0)

    def qemu_pid(self, name: str) -> int | None:
        try:
            with open(f"/run/libvirt/qemu/{name}.pid") as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def qemu_ids(self, domain_type: str) -> tuple[int, int] | None:
        """(uid, gid) libvirtd runs QEMU as for this domain type ("qemu" or "kvm"): the DAC base
        label of its capabilities, i.e. qemu.conf's user and group. None when not reported."""
        caps = ET.fromstring(self._call("capabilities", self.conn().getCapabilities))
        for sm in caps.iter("secmodel"):
            if sm.findtext("model") != "dac":
                continue
            for label in sm.iter("baselabel"):
                if label.get("type") == domain_type and label.text:
                    user, _, group = label.text.partition(":")
                    try:
                        return int(user.lstrip("+")), int(group.lstrip("+"))
                    except ValueError:
                        return None
        return None

    def list_domains(self, prefix: str = "") -> list[tuple[str, bool]]:
        """(name, active) of every domain whose name starts with prefix."""
        c = self.conn()
        doms = self._call("list domains", c.listAllDomains, 0)
        out = []
        for dom in doms:
            try:
                n = dom.name()
                if n.startswith(prefix):
                    out.append((n, bool(dom.isActive())))
            except libvirt.libvirtError:
                continue
        return out

    def close(self) -> None:
        with self._lock:
            c, self._conn = self._conn, None
        if c is not None:
            try:
                c.close()
            except libvirt.libvirtError:
                pass


def host_has_hw_virt() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "vmx" in flags or "svm" in flags
    except OSError:
        pass
    return False


def resolve_accel(setting: str) -> str:
    """Libvirt domain type: 'kvm' only where the CPU shows vmx/svm (unless set explicitly)."""
    if setting in ("kvm", "qemu"):
        return setting
    return "kvm" if host_has_hw_virt() else "qemu"


def qemu_version() -> str:
    try:
        out = subprocess.run(["/usr/bin/qemu-system-x86_64", "--version"], capture_output=True,
                             text=True, timeout=10).stdout
        return out.split()[3] if len(out.split()) > 3 else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def thp_mode() -> str:
    """Host transparent-huge-page mode. With `madvise`/`always`, QEMU's guest RAM gets 2 MiB
    pages (QEMU madvises it) and a restored VM's RSS grows by ~70 MiB (sparse pages pull in
    whole huge pages), unless QEMU runs with THP disabled: see libvirtd_thp_disabled()."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            text = fh.read()
        return text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        return "unknown"


def libvirtd_thp_disabled() -> bool | None:
    """Whether libvirtd (and so every QEMU it starts) runs with prctl(PR_SET_THP_DISABLE), as
    scripts/start-libvirtd.sh starts it; None when it cannot be told (not visible, old kernel)."""
    try:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() != "libvirtd":
                        continue
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("THP_enabled:"):
                            return line.split()[1] == "0"
            except OSError:
                continue
    except OSError:
        pass
    return None


def process_cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of a live process (a VM's QEMU), None when it cannot be read."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
