"""The `process` driver: bubblewrap + cgroup v1, for hosts without libvirt.

Weaker isolation than the libvirt driver (one shared kernel, no seccomp filter), documented as
such. Per execution:

- a fresh size-limited tmpfs (half the memory limit plus the input files) is mounted on the host under the driver's base directory and
  bind-mounted at /mnt/data (input files are written there first; produced files are collected
  from it afterwards; it is unmounted and removed in every case);
- a pids group (pids.max, default 64), a memory group (limit = request memory_mib, memsw too
  when swap accounting exists) and, when available, a freezer and a cpuacct group (its CPU time
  is the result's metadata `cpu_s`) are created under
  /sys/fs/cgroup/<controller>/stepwell/<id>; a tiny /bin/sh wrapper writes its own pid into
  every group *before* it execs anything else, so bubblewrap and the user code are born inside;
- the wrapper then drops to an unprivileged uid/gid with setpriv (a fresh, otherwise unused one
  per execution, drawn from UID_BASE.., unless a fixed uid is configured; no supplementary
  groups, no_new_privs) and execs bubblewrap *unprivileged*, which builds a user, pid, net,
  ipc, uts and cgroup namespace (--unshare-all: no network at all, only an isolated loopback),
  a private tmpfs root with the host's /usr read-only, a minimal /etc, a private /tmp, a fresh
  /proc and a minimal /dev, and runs `/usr/bin/python3 harness.py` there. The code's real uid on
  the host is that unprivileged uid and it holds no capability on the host;
- egress: an EgressProxy (sandbox/egress/proxy.py) for the execution listens on a unix socket
  in its directory, bound into the sandbox at /run/stepwell/egress.sock; the harness listens on
  127.0.0.1:3128 of the sandbox's own loopback and relays there (sandbox/egress/forwarder.py), and
  the code gets HTTP(S)_PROXY pointing at it; the proxy lets through only request.allowed_hosts,
  is closed when the execution ends, and its records are the result's `egress`;
- stdout, stderr, the harness's result payload and bubblewrap's status are read through
  non-blocking pipes with a selector: output beyond the caps is drained and discarded;
- at the deadline (or as soon as the main process is gone) every task of the group is killed
  (freeze, SIGKILL, thaw, repeat until empty); the groups are removed afterwards.

Stateful sessions (isolation "session"): one such sandbox held per session key, running the
harness in session mode (sandbox/process_sessions.py; held, reaped and ended by
sandbox/sessions.py like the libvirt driver's VMs).

Status mapping (_classify, in the words of sandbox/outcome.py shared with the libvirt guest):
exit 0 -> succeeded; harness EXIT_MEMORY_ERROR or an OOM kill in the memory group ->
out_of_memory; deadline -> timeout; a signal -> failed ("killed by signal SIGSEGV"); other
non-zero exit -> failed; the sandbox failing to start -> error. The result value and the
produced files are read by sandbox/outcome.py too.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import json
import contextlib
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from sandbox import cancel, harness, layers, limits, outcome, streaming
from sandbox.config import SandboxConfig, egress_limits_from_env
from sandbox.contract import (
    WORKDIR,
    ExecutionRequest,
    ExecutionResult,
    OutputFile,
    SandboxError,
    SandboxUnavailable,
    Status,
)
from sandbox.egress import forwarder as egress_forwarder
from sandbox.egress import private_networks_from_env
from sandbox.egress.proxy import EgressProxy

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "stepwell"
DEFAULT_BASE_DIR = Path("/run/stepwell-process")
DEFAULT_PIDS_MAX = 64
SANDBOX_UID = 65534                 # used for the start-up probe and when a fixed uid is asked for
UID_BASE = 1_000_000                # per-execution uids/gids are drawn from [UID_BASE, UID_BASE + UID_SPAN)
UID_SPAN = 1 << 20
SYSTEM_PYTHON = "/usr/bin/python3"
GUEST_HARNESS = "/opt/stepwell/harness.py"
GUEST_FORWARDER = "/opt/stepwell/egress_forwarder.py"   # imported by the harness (egress)
GUEST_EGRESS_SOCKET = "/run/stepwell/egress.sock"      # the host proxy's socket, bound in
EGRESS_SOCKET_NAME = "egress.sock"
RESULT_READ_CAP = harness.RESULT_MAX_BYTES + 64 * 1024
STATUS_READ_CAP = 64 * 1024
DRAIN_GRACE_S = 2.0
WORKDIR_INODES = 16384

# /etc entries made visible read-only inside the sandbox (when they exist on the host).
ETC_ENTRIES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf",
    "hosts", "host.conf", "ssl", "ca-certificates", "ca-certificates.conf", "mime.types",
    "alternatives", "python3", "python3.11", "fonts", "locale.alias", "protocols", "services",
    "matplotlibrc",
)

_WRAPPER = (
    # $1..$4: cgroup.procs of the pids, memory and (optional) freezer and cpuacct groups. Join
    # them before anything else runs, disable core dumps, then exec the rest of the command line.
    'echo $$ > "$1" || exit 125; echo $$ > "$2" || exit 125; '
    'if [ -n "$3" ]; then echo $$ > "$3" || exit 125; fi; '
    'if [ -n "$4" ]; then echo $$ > "$4" || exit 125; fi; '
    'ulimit -c 0; shift 4; exec "$@"'
)

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)
_NAME_RE = re.compile(r"^(\d+)-\d+-[0-9a-f]+$")


def usr_links() -> list[str]:
    """bubblewrap arguments that give a box the host's /bin, /sbin and /lib* as they are here:
    the same symlink where the host's is one (merged /usr), else a read-only bind."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), f"/{name}"]
        elif p.is_dir():
            args += ["--ro-bind", str(p), f"/{name}"]
    return args


def _mount_tmpfs(path: Path, size_bytes: int, uid: int, gid: int) -> None:
    opts = f"size={size_bytes},nr_inodes={WORKDIR_INODES},mode=0700,uid={uid},gid={gid}"
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, opts.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def _umount(path: Path) -> None:
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


def _is_mountpoint(path: Path) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Cgroups:
    """The per-execution pids / memory / freezer groups (cgroup v1)."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.pids = root / "pids" / CGROUP_PARENT / name
        self.memory = root / "memory" / CGROUP_PARENT / name
        freezer_root = root / "freezer"
        self.freezer = (freezer_root / CGROUP_PARENT / name) if (freezer_root / "cgroup.procs").exists() else None
        cpu_root = root / "cpuacct"   # optional: CPU time for metering (cpu_s)
        self.cpuacct = (cpu_root / CGROUP_PARENT / name) if (cpu_root / "cgroup.procs").exists() else None

    def create(self, pids_max: int, memory_bytes: int) -> None:
        for d in (self.pids, self.memory, self.freezer, self.cpuacct):
            if d is not None:
                d.mkdir(parents=False, exist_ok=False)
        (self.pids / "pids.max").write_text(str(pids_max))
        (self.memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        memsw = self.memory / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            try:
                memsw.write_text(str(memory_bytes))
            except OSError:
                pass
        try:
            (self.memory / "memory.swappiness").write_text("0")
        except OSError:
            pass

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text()
        except OSError:
            return ""

    def tasks(self) -> list[int]:
        pids: set[int] = set()
        for d in (self.pids, self.memory, self.freezer):
            if d is not None:
                for line in self._read(d / "cgroup.procs").split():
                    if line.isdigit():
                        pids.add(int(line))
        return sorted(pids)

    def _freeze(self, state: str) -> bool:
        if self.freezer is None or not self.freezer.exists():
            return False
        try:
            (self.freezer / "freezer.state").write_text(state)
        except OSError:
            return False
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if self._read(self.freezer / "freezer.state").strip() == state:
                return True
            time.sleep(0.005)
        return False

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every task (freezing first so nothing forks meanwhile). True when empty."""
        deadline = time.monotonic() + timeout
        first = True
        while True:
            tasks = self.tasks()
            if not tasks:
                return True
            if time.monotonic() > deadline:
                return False
            frozen = self._freeze("FROZEN") if first else False
            for pid in tasks:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if frozen or first:
                self._freeze("THAWED")
            first = False
            time.sleep(0.005)

    def memory_stats(self) -> dict:
        out: dict = {}
        for key, fname in (("memory_max_usage_bytes", "memory.max_usage_in_bytes"),
                           ("memory_failcnt", "memory.failcnt")):
            raw = self._read(self.memory / fname).strip()
            if raw.isdigit():
                out[key] = int(raw)
        for line in self._read(self.memory / "memory.oom_control").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "oom_kill" and parts[1].isdigit():
                out["oom_kills"] = int(parts[1])
        raw = self._read(self.pids / "pids.peak").strip()
        if raw.isdigit():
            out["pids_peak"] = int(raw)
        raw = self._read(self.pids / "pids.events")
        m = re.search(r"max (\d+)", raw)
        if m:
            out["pids_max_hits"] = int(m.group(1))
        return out

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the group's tasks used, when cpuacct is mounted."""
        raw = self._read(self.cpuacct / "cpuacct.usage").strip() if self.cpuacct is not None else ""
        return round(int(raw) / 1e9, 6) if raw.isdigit() else None

    def remove(self) -> None:
        self._freeze("THAWED")
        self.kill_all()
        for d in (self.pids, self.memory, self.freezer, self.cpuacct):
            if d is None:
                continue
            for _ in range(200):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    self.kill_all(timeout=0.5)
                    time.sleep(0.01)


class ProcessDriver:
    """Runs each execution in a fresh bubblewrap sandbox bounded by its own cgroups.

    Thread-safe: execute() may be called from many threads; `max_concurrency` executions run
    at once, the others wait for a slot (the wait does not count against their timeout).
    """

    name = "process"
    supports_egress = True      # ExecutionRequest.allowed_hosts is honoured (sandbox.egress)

    def __init__(self, config: SandboxConfig | None = None, pool_size: int | None = None, *,
                 base_dir: str | os.PathLike | None = None, pids_max: int = DEFAULT_PIDS_MAX,
                 uid: int | None = None, cgroup_root: str | os.PathLike = CGROUP_ROOT):
        self.config = config or SandboxConfig.from_env()
        size = pool_size if pool_size else self.config.pool_size
        self.max_concurrency = max(int(size or 0), 1) if pool_size else max(int(size or 0), 4)
        self.base_dir = Path(base_dir or os.environ.get("SANDBOX_PROCESS_DIR") or DEFAULT_BASE_DIR)
        self.pids_max = int(pids_max)
        # None: every execution runs under its own otherwise unused uid (and gid of the same
        # number), so concurrent executions share nothing keyed by uid (signals, keyrings,
        # inotify and user-namespace counts); an int: that fixed uid for all.
        self.uid = None if uid is None else int(uid)
        self._uids_in_use: set[int] = set()
        self.cgroup_root = Path(cgroup_root)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._busy = 0
        self._count = 0
        self._failures = 0
        self._seq = itertools.count(1)
        self._started = False
        self._closed = False
        self._bwrap = self._setpriv = None
        self._share: Path | None = None
        self._cancels = cancel.Cancels()
        self.sessions = None   # sandboxes held per session key (sandbox/process_sessions.py)

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> "ProcessDriver":
        with self._lock:
            if self._started:
                return self
            self._check_host()
            self.base_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.base_dir, 0o711)
            self._share = self.base_dir / "share"
            self._share.mkdir(exist_ok=True)
            os.chmod(self._share, 0o755)
            self._install_share()
            active = layers.active_layer(self.config)
            # Layer mounts are per runtime and shared by this host's driver processes; drop
            # those of other runtimes (lazily: sandboxes still using one keep it).
            layers.unexpose_layers(self._share, keep=layers.exposed_path(active, self._share) if active else None)
            self.sweep()
            self._probe()
            if self.sessions is None or self._closed:
                from sandbox.sessions import SessionStore

                self.sessions = SessionStore(lambda sess: sess.destroy(), name="process-sessions")
            self._started = True
            self._closed = False
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._started = False
            sessions = self.sessions.close() if self.sessions is not None else []
        for sess in sessions:
            sess.destroy()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def status(self) -> dict:
        with self._lock:
            busy = self._busy
            return {
                "driver": self.name,
                "ready": max(self.max_concurrency - busy, 0) if self._started else 0,
                "busy": busy,
                "refilling": 0,
                "size": self.max_concurrency,
                "started": self._started,
                "executions": self._count,
                "sessions": self.sessions.counts() if self.sessions is not None else None,
                "errors": self._failures,
            }

    def _check_host(self) -> None:
        missing = []
        self._bwrap = shutil.which("bwrap")
        self._setpriv = shutil.which("setpriv")
        if not self._bwrap:
            missing.append("bubblewrap (bwrap) is not installed")
        if not self._setpriv:
            missing.append("setpriv (util-linux) is not installed")
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            missing.append(f"{SYSTEM_PYTHON} is missing")
        if os.geteuid() != 0:
            missing.append("the process driver must run as root (it creates cgroups and mounts)")
        for ctl in ("pids", "memory"):
            if not (self.cgroup_root / ctl / "cgroup.procs").exists():
                missing.append(f"cgroup v1 controller {ctl!r} is not mounted at {self.cgroup_root / ctl}")
        if missing:
            raise SandboxUnavailable("process driver unavailable: " + "; ".join(missing))
        for ctl in ("pids", "memory", "freezer", "cpuacct"):
            if (self.cgroup_root / ctl / "cgroup.procs").exists():
                try:
                    (self.cgroup_root / ctl / CGROUP_PARENT).mkdir(exist_ok=True)
                except OSError as exc:
                    raise SandboxUnavailable(f"cannot create cgroup {ctl}/{CGROUP_PARENT}: {exc}") from None

    def _install_share(self) -> None:
        assert self._share is not None
        files = {"harness.py": Path(harness.__file__).read_bytes(),
                 "egress_forwarder.py": Path(egress_forwarder.__file__).read_bytes()}
        for name, data in files.items():
            dest = self._share / name
            try:
                if dest.read_bytes() == data:
                    continue
            except OSError:
                pass
            tmp = self._share / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)

    def _probe(self) -> None:
        """Run `true` in a minimal sandbox once, so a broken bubblewrap fails at start()."""
        probe_uid = SANDBOX_UID if self.uid is None else self.uid
        cmd = [self._setpriv, f"--reuid={probe_uid}", f"--regid={probe_uid}", "--clear-groups",
               "--no-new-privs", "--", self._bwrap, "--unshare-all", "--unshare-user", "--die-with-parent",
               "--ro-bind", "/usr", "/usr", *usr_links(), "--proc", "/proc", "--dev", "/dev",
               "--", "/usr/bin/true"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=30, env=self._host_env(), cwd="/")
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap probe failed: {exc}") from None
        if proc.returncode != 0:
            raise SandboxUnavailable(
                "bubblewrap cannot create an unprivileged sandbox here "
                f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace').strip()}"
            )

    def sweep(self) -> dict:
        """Remove cgroups, mounts and directories left by dead driver processes."""
        removed = {"cgroups": 0, "dirs": 0}
        own = os.getpid()
        for ctl in ("pids", "memory", "freezer", "cpuacct"):
            parent = self.cgroup_root / ctl / CGROUP_PARENT
            if not parent.is_dir():
                continue
            for d in parent.iterdir():
                m = _NAME_RE.match(d.name)
                if not d.is_dir() or not m:
                    continue
                pid = int(m.group(1))
                if pid == own or _pid_alive(pid):
                    continue
                _Cgroups(self.cgroup_root, d.name).remove()
                removed["cgroups"] += 1
        if self.base_dir.is_dir():
            for d in self.base_dir.iterdir():
                m = _NAME_RE.match(d.name)
                if not m or not d.is_dir():
                    continue
                pid = int(m.group(1))
                if pid == own or _pid_alive(pid):
                    continue
                self._remove_exec_dir(d)
                removed["dirs"] += 1
        return removed

    @staticmethod
    def _remove_exec_dir(d: Path) -> None:
        data = d / "data"
        for _ in range(3):
            if not _is_mountpoint(data):
                break
            try:
                _umount(data)
            except OSError:
                break
        shutil.rmtree(d, ignore_errors=True)

    # ----------------------------------------------------------------------------- execution
    def end_session(self, key: str) -> bool:
        """Destroy the sandbox held for session `key` (after the execution in flight, if any);
        False when there is no such session."""
        return self.sessions.end(key) if self.sessions is not None else False

    def _execute_session(self, request: ExecutionRequest, execution_id: str | None,
                         on_output=None) -> ExecutionResult:
        """A stateful session (sandbox/sessions.py, sandbox/process_sessions.py): the sandbox
        held for the key, else a new one that is then held unless the execution ended badly."""
        from sandbox.process_sessions import ProcessSession
        from sandbox.sessions import SessionError

        t0 = time.monotonic()
        key = request.reuse_key
        try:
            sess = self.sessions.acquire(key, t0 + float(request.timeout_s))
        except SessionError as exc:
            return ExecutionResult(status=Status.ERROR, message=str(exc),
                                   metadata={"driver": self.name, "session": "new"})
        state = "resumed" if sess is not None else "new"
        result = None
        try:
            with self._occupied():
                try:
                    if sess is None:
                        sess = ProcessSession(self, request)
                    result = sess.run(request, execution_id, on_output)
                except SandboxError:
                    raise
                except Exception as exc:  # noqa: BLE001 - infrastructure fault, reported as such
                    result = ExecutionResult(status=Status.ERROR, message=f"process driver error: {exc!r}",
                                             metadata={"driver": self.name})
            result.metadata["session"] = state
            return result
        finally:
            keep = result is not None and sess is not None and sess.alive and \
                result.status in (Status.SUCCEEDED, Status.FAILED)
            if result is not None:
                result.metadata.pop("session_alive", None)
            self.sessions.release(key, sess, keep, request.session_idle_s)

    def cancel(self, execution_id: str) -> bool:
        """Kill the execution's cgroup now (its result: killed, cancel.MESSAGE, the output so
        far); False when it is not running (one that has not started yet will not)."""
        return self._cancels.cancel(execution_id)

    def execute(self, request: ExecutionRequest, execution_id: str | None = None,
                on_output=None) -> ExecutionResult:
        """`on_output(stdout, stderr)`: live output while the code runs (sandbox/streaming.py)."""
        if not isinstance(request, ExecutionRequest):
            raise TypeError("execute() takes an ExecutionRequest")
        execution_id = cancel.check_id(execution_id)
        if not self._started:
            self.start()
        if request.layer is not None:
            try:
                layers.layer_for(request, self.config)
            except layers.LayerMissing as exc:
                return ExecutionResult(status=Status.ERROR, message=str(exc), metadata={"driver": self.name})
        if request.isolation == "session":
            return self._execute_session(request, execution_id, on_output)
        if not self._cancels.register(execution_id):  # cancelled before it started
            self._cancels.unregister(execution_id)
            return ExecutionResult(status=Status.KILLED, message=cancel.MESSAGE, metadata={"driver": self.name})
        try:
            return self._execute_in_slot(request, execution_id, on_output)
        finally:
            self._cancels.unregister(execution_id)

    def _execute_in_slot(self, request: ExecutionRequest, execution_id: str | None,
                         on_output=None) -> ExecutionResult:
        with self._occupied():
            try:
                if self._cancels.cancelled(execution_id):   # while it waited for a slot
                    return ExecutionResult(status=Status.KILLED, message=cancel.MESSAGE,
                                           metadata={"driver": self.name})
                return self._execute(request, execution_id, on_output)
            except SandboxError:
                with self._lock:
                    self._failures += 1
                raise
            except Exception as exc:  # noqa: BLE001 - infrastructure fault, reported as such
                with self._lock:
                    self._failures += 1
                return ExecutionResult(status=Status.ERROR, message=f"process driver error: {exc!r}",
                                       metadata={"driver": self.name})

    @contextlib.contextmanager
    def _occupied(self):
        """One execution slot, counted busy while it runs (refused once the driver is closed)."""
        with self._slots:
            with self._lock:
                if self._closed:
                    raise SandboxUnavailable("the process driver is closed")
                self._busy += 1
                self._count += 1
            try:
                yield
            finally:
                with self._lock:
                    self._busy -= 1

    @staticmethod
    def _host_env() -> dict:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

    def _acquire_uid(self) -> int:
        if self.uid is not None:
            return self.uid
        with self._lock:
            while True:
                uid = UID_BASE + secrets.randbelow(UID_SPAN)
                if uid not in self._uids_in_use:
                    self._uids_in_use.add(uid)
                    return uid

    def _release_uid(self, uid: int) -> None:
        with self._lock:
            self._uids_in_use.discard(uid)

    def _bwrap_args(self, request: ExecutionRequest, workdir: Path, tmp_bytes: int, exec_dir: Path,
                    layer: layers.Layer | None = None) -> list[str]:
        assert self._share is not None
        args = [
            self._bwrap,
            "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr", *usr_links(),
            "--dir", "/etc",
        ]
        for entry in ETC_ENTRIES:
            src = Path("/etc") / entry
            if src.exists():
                args += ["--ro-bind", str(src), str(src)]
        args += [
            "--ro-bind", str(exec_dir / "passwd"), "/etc/passwd",
            "--ro-bind", str(exec_dir / "group"), "/etc/group",
            "--ro-bind", str(self._share / "harness.py"), GUEST_HARNESS,
            "--ro-bind", str(self._share / "egress_forwarder.py"), GUEST_FORWARDER,
            "--bind", str(exec_dir / EGRESS_SOCKET_NAME), GUEST_EGRESS_SOCKET,
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(min(tmp_bytes, 64 * 1024 * 1024)), "--tmpfs", "/dev/shm",
            "--dir", "/var", "--symlink", "../tmp", "/var/tmp",
            "--bind", str(workdir), WORKDIR,
            "--chdir", WORKDIR,
            "--clearenv",
        ]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "USER": "sandbox",
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(request.env)
        env.update(egress_forwarder.PROXY_ENV)       # the only way out: the egress forwarder
        for k, v in env.items():
            args += ["--setenv", k, v]
        # The package layer of the active runtime, read-only at /opt/stepwell/packages (on
        # PYTHONPATH); the host's own dist-packages are hidden, so only the allow-list imports.
        source = layers.expose_layer(layer, self._share) if layer is not None else None
        args += layers.process_bwrap_args(layer, source)
        return args

    def _execute(self, request: ExecutionRequest, execution_id: str | None = None,
                 on_output=None) -> ExecutionResult:
        t_start = time.monotonic()
        exec_id = f"{os.getpid()}-{next(self._seq)}-{secrets.token_hex(4)}"
        exec_dir = self.base_dir / exec_id
        workdir = exec_dir / "data"
        cg = _Cgroups(self.cgroup_root, exec_id)
        fds: list[int] = []
        proc = None
        mounted = False
        proxy: EgressProxy | None = None
        uid = gid = self._acquire_uid()
        # Read the active runtime once per execution (one activated meanwhile applies to the
        # next), unless the request names its own (a session pool pinned to a runtime).
        layer = layers.layer_for(request, self.config)
        try:
            exec_dir.mkdir(mode=0o711)
            os.chmod(exec_dir, 0o711)
            workdir.mkdir(mode=0o700)
            for name, text in (
                ("passwd", f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                           f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n"),
                ("group", f"root:x:0:\nsandbox:x:{gid}:\n"),
            ):
                (exec_dir / name).write_text(text)
                os.chmod(exec_dir / name, 0o644)
            mem_bytes = int(request.memory_mib) * 1024 * 1024
            input_bytes = sum(len(f.content) for f in request.files)
            try:
                _mount_tmpfs(workdir, mem_bytes // 2 + input_bytes + 1024 * 1024, uid, gid)
                mounted = True
            except OSError as exc:
                raise SandboxUnavailable(f"cannot mount the working directory tmpfs: {exc}") from None
            for f in request.files:
                p = workdir / f.name
                p.write_bytes(f.content)
                os.chown(p, uid, gid)
                os.chmod(p, 0o644)
            try:
                cg.create(self.pids_max, mem_bytes)
            except OSError as exc:
                raise SandboxUnavailable(f"cannot create cgroups for {exec_id}: {exc}") from None

            # The execution's egress proxy, on a unix socket bound into the sandbox, where the
            # harness's forwarder relays 127.0.0.1:3128 to it.
            proxy = EgressProxy(request.allowed_hosts, private_networks_from_env(), egress_limits_from_env())
            proxy.serve_unix(str(exec_dir / EGRESS_SOCKET_NAME))
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            res_r, res_w = os.pipe()
            st_r, st_w = os.pipe()
            fds += [out_r, out_w, err_r, err_w, res_r, res_w, st_r, st_w]
            spec_path = exec_dir / "spec.json"
            with open(os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                json.dump({"code": request.code, "inputs": request.inputs, "workdir": WORKDIR,
                           "result_fd": res_w, "egress_socket": GUEST_EGRESS_SOCKET,
                           "egress_listen": list(egress_forwarder.DEFAULT_LISTEN)}, fh)
            cmd = [
                "/bin/sh", "-c", _WRAPPER, "stepwell-sandbox",
                str(cg.pids / "cgroup.procs"), str(cg.memory / "cgroup.procs"),
                str(cg.freezer / "cgroup.procs") if cg.freezer else "",
                str(cg.cpuacct / "cgroup.procs") if cg.cpuacct else "",
                self._setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                "--no-new-privs", "--",
                *self._bwrap_args(request, workdir, mem_bytes // 4, exec_dir, layer),
                "--json-status-fd", str(st_w),
                "--", SYSTEM_PYTHON, GUEST_HARNESS,
            ]
            t_spawn = time.monotonic()
            with open(spec_path, "rb") as spec_fh:
                proc = subprocess.Popen(
                    cmd, stdin=spec_fh, stdout=out_w, stderr=err_w, pass_fds=(res_w, st_w),
                    close_fds=True, env=self._host_env(), cwd="/", start_new_session=True,
                )
            for fd in (out_w, err_w, res_w, st_w):
                os.close(fd)
                fds.remove(fd)
            if not self._cancels.register(execution_id, cg.kill_all):
                cg.kill_all()   # cancelled while it was being set up
            deadline = t_spawn + float(request.timeout_s)
            caps = {out_r: int(request.stdout_cap), err_r: int(request.stderr_cap),
                    res_r: RESULT_READ_CAP, st_r: STATUS_READ_CAP}
            bufs = {fd: bytearray() for fd in caps}
            totals = {fd: 0 for fd in caps}

            stream = None
            if on_output is not None:
                live = streaming.OutputStream(on_output, request.stdout_cap, request.stderr_cap)
                stream = (live, {out_r: "out", err_r: "err"})
            timed_out = self._pump(bufs, totals, caps, deadline, stream)
            if not timed_out:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0))
                except subprocess.TimeoutExpired:
                    timed_out = True
            t_end = time.monotonic()
            stats = cg.memory_stats()
            all_gone = cg.kill_all()
            cpu_s = cg.cpu_seconds()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            proxy.close()
            egress = proxy.records()
            self._pump(bufs, totals, caps, time.monotonic() + DRAIN_GRACE_S)
            stats = {**stats, **{k: v for k, v in cg.memory_stats().items() if k not in stats or v > stats[k]}}

            stdout = bytes(bufs[out_r]).decode("utf-8", errors="replace")
            stderr = bytes(bufs[err_r]).decode("utf-8", errors="replace")
            payload = (outcome.parse_payload(bytes(bufs[res_r]))
                       if totals[res_r] <= RESULT_READ_CAP else None)
            started = b"child-pid" in bytes(bufs[st_r])
            rc = proc.returncode
            metadata = {
                "driver": self.name, "execution_id": exec_id,
                "runtime_id": layer.runtime_id if layer else None,
                "cgroup": f"{CGROUP_PARENT}/{exec_id}", "uid": uid,
                "returncode": rc, "pids_max": self.pids_max,
                "memory_limit_bytes": mem_bytes,
                "stdout_bytes": totals[out_r], "stderr_bytes": totals[err_r],
                "setup_ms": round((t_spawn - t_start) * 1000, 3), "cpu_s": cpu_s,
                **({"egress_dropped": proxy.dropped_records} if proxy.dropped_records else {}),
                **stats,
            }
            status, exit_code, message = self._classify(
                request, rc, timed_out, started, payload, stats, stderr)
            if self._cancels.cancelled(execution_id):
                status, exit_code, message = Status.KILLED, None, cancel.MESSAGE
            result_value = None
            if status in (Status.SUCCEEDED, Status.FAILED):
                result_value = outcome.result_value(payload, stdout)
            files: tuple[OutputFile, ...] = ()
            if mounted and status != Status.ERROR:
                if all_gone or cg.kill_all():
                    files = self._collect(workdir, request)
                else:
                    message = (message + "; " if message else "") + "produced files were not collected (processes survived)"
            return limits.enforce(ExecutionResult(
                status=status, exit_code=exit_code, stdout=stdout, stderr=stderr,
                stdout_truncated=totals[out_r] > caps[out_r],
                stderr_truncated=totals[err_r] > caps[err_r],
                result=result_value, files=files,
                duration_ms=(t_end - t_spawn) * 1000, message=message, metadata=metadata,
                egress=egress,
            ))
        finally:
            if proxy is not None:
                proxy.close()
            if proc is not None and proc.poll() is None:
                cg.kill_all()
                try:
                    proc.kill()
                    proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                cg.remove()
            except OSError:
                pass
            if mounted:
                try:
                    _umount(workdir)
                except OSError:
                    pass
            shutil.rmtree(exec_dir, ignore_errors=True)
            self._release_uid(uid)

    @staticmethod
    def _pump(bufs: dict, totals: dict, caps: dict, deadline: float, stream=None) -> bool:
        """Read all pipes until every one is at EOF (-> False) or the deadline (-> True).
        `stream`: (OutputStream, {fd: "out" | "err"}) fed with what stdout and stderr bring."""
        sel = selectors.DefaultSelector()
        try:
            for fd in bufs:
                if totals.get(("eof", fd)):
                    continue
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            live, names = stream if stream is not None else (None, {})
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                if live is not None:
                    live.tick()
                    left = min(left, live.interval)
                for key, _ in sel.select(left):
                    fd = key.fd
                    try:
                        data = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        totals[("eof", fd)] = True
                        continue
                    totals[fd] += len(data)
                    if fd in names:
                        live.feed(names[fd], data)
                    room = caps[fd] - len(bufs[fd])
                    if room > 0:
                        bufs[fd] += data[:room]
            if live is not None:
                live.flush()
            return False
        finally:
            sel.close()

    @staticmethod
    def _classify(request, rc, timed_out, started, payload, stats, stderr):
        """-> (status, exit_code, message)."""
        oom = stats.get("oom_kills", 0) > 0
        if timed_out:
            return Status.TIMEOUT, None, f"timed out after {float(request.timeout_s):g} s; all processes were killed"
        if not started:
            tail = stderr.strip().splitlines()[-1:] or [f"exit {rc}"]
            return Status.ERROR, None, f"the sandbox failed to start: {tail[0]}"
        mib = request.memory_mib
        if rc is not None and rc < 0:  # the bwrap monitor itself was killed
            status, message = outcome.killed(-rc, oom=oom, memory_mib=mib)
            return Status(status), None, message
        finished = payload is not None
        if rc == 0 or (rc == harness.EXIT_MEMORY_ERROR and finished):
            status, message = outcome.exited(rc, finished, memory_mib=mib)
            return Status(status), rc, message
        if oom:
            status, message = outcome.killed(signal.SIGKILL, oom=True, memory_mib=mib)
            return Status(status), rc if finished else None, message
        if not finished and rc is not None and 128 < rc < 128 + 65:
            # bubblewrap reports a child killed by signal N as exit 128+N; the harness did not
            # reach the end (no result payload), so this is a signal and not sys.exit(128+N).
            status, message = outcome.killed(rc - 128)
            return Status(status), None, message
        status, message = outcome.exited(rc, finished, memory_mib=mib)
        return Status(status), rc, message

    @staticmethod
    def _collect(workdir: Path, request: ExecutionRequest) -> tuple[OutputFile, ...]:
        """Produced files (outcome.collect_files). Only called once every sandboxed process is
        gone, so nothing can swap a file for a symlink while the host reads it (O_NOFOLLOW
        besides)."""
        inputs = {f.name: f.content for f in request.files}
        try:
            found = outcome.collect_files(str(workdir), int(request.file_cap), inputs)
        except (OSError, RecursionError):
            return ()
        return tuple(OutputFile(name=name, size=size, content=content, truncated=content is None)
                     for name, size, content in found)
