"""Stepwell guest agent: PID 1 of the sandbox VM after switch_root (stdlib only).

Two processes share the one virtio-serial channel to the host (length-prefixed frames,
protocol.py), under a lock, so that a request costs one process and no hand-off:

- the *worker*, forked at boot, imports numpy, pandas and matplotlib (Agg) once, freezes that
  heap for the cyclic GC and drops for good to uid 65534 (keeping only CAP_SYS_BOOT, so a reboot
  or power-off from inside ends the VM; no_new_privs; RLIMIT_NPROC), all before the host saves
  the VM for its warm pool. It then owns the channel: it reads a request, answers "accepted",
  runs the code (harness.run) and sends the result itself. Under TCG every guest instruction
  costs about ten host ones, and a hand-off between two processes cost more than the rest of
  a hello world together, so the request path stays inside this one process.
- the *supervisor* (PID 1, root) is the safety net and does what needs root. It answers for
  the worker when the worker dies (`os._exit`, a segfault, the OOM killer) with the exit status
  and the output so far; it answers "partial" (the host asks at a timeout, before the kill)
  while the code runs; it drains the output pipes while the code prints a lot; it mixes host
  entropy into the kernel pool and forces a CRNG reseed, and drops caches before a save.

The channel lock (flock on RESULT_DIR/channel.lock): the worker holds it whenever it may read
the channel (idle, and while answering) and gives it up only while user code runs, with
Shared.busy set. The supervisor reads the channel only while it holds the lock and busy is set,
which is exactly while the code runs and no answer can have left: then the only frame the host
can send is "partial". So each frame has one reader.

User output never reaches the channel as frames: fds 1 and 2 of the worker are pipes. Whoever
holds the lock drains them into a shared buffer (Shared) with caps; the worker finishes the
drain and ships the text *inside* the JSON result, so nothing the code prints can forge a
result. (The code runs in the worker, which holds the channel: it can answer its own request
with anything it likes, as it can with `result`; the VM is single-use and the host checks
every frame. It cannot reach root's operations or outlive the VM.)

Requests that carry host entropy (the warm-ups after every restore, a cold VM's only request)
make the supervisor reseed the kernel CRNG and the worker reseed Python's and numpy's
generators, so every restored clone has its own RNG state. When the host end of the channel
goes away while the agent is armed, the VM powers itself off (restored domains outlive the
host process that restored them).
"""
from __future__ import annotations

import sys

sys.path.insert(0, "/opt/stepwell")

import base64  # noqa: E402
import ctypes  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import mmap  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402,F401 - imported before the snapshot, used per request
import resource  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

import harness  # noqa: E402
import protocol  # noqa: E402

PORT_NAME = "org.stepwell.agent.0"
WORKDIR = "/mnt/data"
USER_ID = 65534
MPL_SRC = "/opt/stepwell/mplconfig"
PACKAGES_DIR = "/opt/stepwell/packages"   # the runtime's package layer (vdb), see sandbox/layers.py
PRELOAD = ("numpy", "pandas", "matplotlib")  # imported before the state is saved, when present
MPL_DIR = "/tmp/.mpl"
RESULT_DIR = "/run/stepwell"
TOTAL_FILES_BUDGET = 64 * 1024 * 1024
READ_CHUNK = 1 << 16  # below malloc's mmap threshold: no mmap/munmap per read
PIPE_SIZE = 1 << 20   # the worker's stdout/stderr pipes (the default pipe-max-size)
PRELOAD_MIN_MIB = 300  # below this, importing numpy+pandas+matplotlib up front thrashes
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKDIR,
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": MPL_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
CAP_SYS_BOOT = 22
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

LOCK_PATH = RESULT_DIR + "/channel.lock"
KEEP_MAX = 32 * 1024 * 1024   # output bytes kept per stream in the guest (the host caps again)
DEFAULT_CAP = 1024 * 1024
DRAIN_POLL_MS = (2, 100)      # supervisor: while the code prints / otherwise

libc = ctypes.CDLL(None, use_errno=True)
T0 = time.monotonic()


def log(msg: str) -> None:
    try:
        os.write(2, f"[agent {time.monotonic() - T0:7.3f}] {msg}\n".encode())
    except OSError:
        pass


def poweroff() -> None:
    try:
        os.sync()
    finally:
        libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
        os._exit(0)


def serve_channel(port: int, shared: Shared, handle) -> None:
    """Read frames from the host for good and pass each to `handle`. When the host end goes
    away while the agent is armed, power the VM off (restored domains outlive the process that
    restored them); before the host connects (or while disarmed), just wait."""
    dec = protocol.FrameDecoder()
    poller = select.poll()
    poller.register(port, select.POLLIN)
    while True:
        ev = poller.poll()[0][1]
        data = None
        if ev & select.POLLIN:
            try:
                data = os.read(port, READ_CHUNK)
            except BlockingIOError:
                pass
        if not data:
            if ev & select.POLLHUP:
                if shared["armed"]:
                    log("host went away: powering off")
                    poweroff()
                time.sleep(0.02)
            continue
        try:
            msgs = dec.feed(data)
        except protocol.ProtocolError as exc:
            log(f"bad frame from host: {exc}")
            dec = protocol.FrameDecoder()
            continue
        for m in msgs:
            handle(m)


# --------------------------------------------------------------------------------- worker ---

def reseed_kernel(entropy: bytes) -> None:
    """Mix host entropy into the kernel pool, credit it and force a CRNG reseed (root only).
    Every restore of one saved state would otherwise hand out the same random bytes."""
    if not entropy:
        return
    try:
        fd = os.open("/dev/urandom", os.O_WRONLY)
        try:
            os.write(fd, entropy)
            buf = struct.pack("ii", len(entropy) * 8, len(entropy)) + entropy
            fcntl.ioctl(fd, RNDADDENTROPY, buf)
            fcntl.ioctl(fd, RNDRESEEDCRNG)
        finally:
            os.close(fd)
    except OSError as exc:
        log(f"reseed kernel CRNG: {exc}")


def _reseed_userspace() -> None:
    """Python's and numpy's global generators, from the freshly reseeded kernel CRNG."""
    random.seed(os.urandom(32))
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(list(struct.unpack("8I", os.urandom(32))))


def _drop_privileges(uid: int = USER_ID) -> None:
    """Become `uid` for good, keeping only CAP_SYS_BOOT (a reboot or power-off from inside
    then ends the VM), with no_new_privs and an RLIMIT_NPROC that binds for non-root."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setresuid(uid, uid, uid)
    hdr = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    bit = 1 << CAP_SYS_BOOT
    data = struct.pack("6I", bit, bit, 0, 0, 0, 0)  # effective, permitted, inheritable x2
    hbuf = ctypes.create_string_buffer(hdr, len(hdr))
    dbuf = ctypes.create_string_buffer(data, len(data))
    if libc.capset(hbuf, dbuf) != 0:
        log(f"capset failed: errno {ctypes.get_errno()}")
    for res, want in ((resource.RLIMIT_NPROC, 1024), (resource.RLIMIT_CORE, 0)):
        try:
            _soft, hard = resource.getrlimit(res)
            lim = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(res, (lim, lim))
        except (OSError, ValueError):
            pass
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)



# ----------------------------------------------------------------------------- shared state ---

class Shared:
    """State shared by the supervisor and the worker: an anonymous MAP_SHARED mapping made
    before the fork. Header fields (int64) then the kept stdout and stderr bytes."""

    FIELDS = ("busy", "armed", "req_id", "sent_id", "out_cap", "err_cap", "file_cap",
              "out_len", "out_total", "err_len", "err_total", "oom_base")
    HEADER = struct.Struct(f"<{len(FIELDS)}q")

    def __init__(self):
        self.map = mmap.mmap(-1, self.HEADER.size + 2 * KEEP_MAX)  # MAP_SHARED | MAP_ANONYMOUS
        self._index = {name: i * 8 for i, name in enumerate(self.FIELDS)}
        self.base = {"out": self.HEADER.size, "err": self.HEADER.size + KEEP_MAX}
        self["req_id"] = self["sent_id"] = -2  # no request yet (and none unanswered)

    def __getitem__(self, name: str) -> int:
        return struct.unpack_from("<q", self.map, self._index[name])[0]

    def __setitem__(self, name: str, value: int) -> None:
        struct.pack_into("<q", self.map, self._index[name], int(value))

    def begin(self, req_id: int, req: dict) -> None:
        """A new request: its id and caps, empty output (one write: this is on the hot path)."""
        struct.pack_into("<7q", self.map, self._index["out_cap"],
                         min(int(req.get("stdout_cap", DEFAULT_CAP)), KEEP_MAX),
                         min(int(req.get("stderr_cap", DEFAULT_CAP)), KEEP_MAX),
                         int(req.get("file_cap", 8 << 20)), 0, 0, 0, 0)
        self["req_id"] = req_id

    def keep(self, stream: str, data: bytes) -> None:
        n, cap = self[f"{stream}_len"], self[f"{stream}_cap"]
        take = max(0, min(len(data), cap - n))
        if take:
            start = self.base[stream] + n
            self.map[start:start + take] = data[:take]
            self[f"{stream}_len"] = n + take
        self[f"{stream}_total"] = self[f"{stream}_total"] + len(data)

    def text(self, stream: str) -> tuple[str, bool]:
        start = self.base[stream]
        data = self.map[start:start + self[f"{stream}_len"]]
        return data.decode("utf-8", "replace"), self[f"{stream}_total"] > self[f"{stream}_len"]


def drain(fd: int, shared: Shared, stream: str) -> int:
    """Move what the pipe holds into the shared buffer (a pipe read returns all it has up to
    the size asked for: a short read means it is empty). Caller holds the channel lock."""
    n = 0
    while True:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return n
        if not data:
            return n
        shared.keep(stream, data)
        n += len(data)
        if len(data) < READ_CHUNK:
            return n


def collect_result(shared: Shared, out_fd: int, err_fd: int, inputs_written: dict) -> dict:
    """stdout/stderr (drained to the end), produced files: the parts of a result that do not
    depend on how the code ended. Caller holds the channel lock."""
    drain(out_fd, shared, "out")
    drain(err_fd, shared, "err")
    stdout, out_trunc = shared.text("out")
    stderr, err_trunc = shared.text("err")
    return {"stdout": stdout, "stderr": stderr, "stdout_truncated": out_trunc,
            "stderr_truncated": err_trunc,
            "files": _collect(shared["file_cap"], inputs_written)}


def status_of_exit(code: int) -> dict:
    if code == 0:
        return {"exit_code": 0, "status": "succeeded", "message": ""}
    if code == harness.EXIT_MEMORY_ERROR:
        return {"exit_code": code, "status": "out_of_memory",
                "message": "MemoryError: the code ran out of memory"}
    return {"exit_code": code, "status": "failed", "message": f"the code exited with code {code}"}


# --------------------------------------------------------------------------------- worker ---

class Worker:
    """Owns the channel (under the lock) and runs every request in this process."""

    def __init__(self, port: int, ctl_r: int, ctl_w: int, out_r: int, err_r: int,
                 shared: Shared, ready: dict):
        self.port, self.ctl_r, self.ctl_w = port, ctl_r, ctl_w
        self.out_r, self.err_r = out_r, err_r
        self.shared = shared
        self.ready = ready
        self.ctl = protocol.FdChannel(ctl_r)
        self.inputs_written: dict[str, bytes] = {}
        self.lock = os.open(LOCK_PATH, os.O_RDWR | os.O_CLOEXEC)  # its own open file: flock
        # excludes the supervisor's

    def send(self, message: dict) -> None:
        protocol.write_all(self.port, protocol.encode(message))

    def ask_supervisor(self, message: dict) -> dict:
        """Root's operations (kernel reseed, drop caches): off the request path of a warm slot."""
        protocol.write_all(self.ctl_w, protocol.encode(message))
        return self.ctl.recv(time.monotonic() + 60)

    def serve(self) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        serve_channel(self.port, self.shared, self.handle)

    def handle(self, m: dict) -> None:
        op = m.get("op")
        if op == "exec":
            self.execute(m)
        elif op == "hello":
            if m.get("arm"):
                self.shared["armed"] = 1
            self.send({"op": "hello", "ready": True, "worker": self.ready,
                       "uptime_s": round(time.monotonic() - T0, 3), "mem_mib": _meminfo_mib(),
                       "armed": bool(self.shared["armed"])})
        elif op == "ping":
            self.send({"op": "pong", "t": m.get("t")})
        elif op == "disarm":
            # Before the host saves this VM: stop powering off on disconnect, and drop clean
            # caches (freed pages are zeroed, init_on_free=1) so the saved state stays small.
            self.shared["armed"] = 0
            reply = self.ask_supervisor({"op": "drop_caches"} if m.get("drop_caches") else {"op": "noop"})
            self.send({"op": "disarmed", "mem_free_mib": reply.get("mem_free_mib", _memfree_mib())})
        elif op == "partial":  # only while idle: nothing runs
            self.send({"op": "partial", "stdout": "", "stderr": "",
                       "stdout_truncated": False, "stderr_truncated": False})
        elif op == "poweroff":
            poweroff()
        else:
            self.send({"op": "error", "message": f"unknown op {op!r}"})

    def execute(self, m: dict) -> None:
        t = time.monotonic()
        req_id = m.get("id")
        if isinstance(req_id, int):  # the common case, without a JSON encoder on the hot path
            protocol.write_all(self.port, protocol.frame(b'{"op":"accepted","id":%d}' % req_id))
        else:
            self.send({"op": "accepted", "id": req_id})
        req = m.get("request") or {}
        shared = self.shared
        shared.begin(req_id if isinstance(req_id, int) else -1, req)
        res: dict
        try:
            if m.get("entropy"):
                self.ask_supervisor({"op": "reseed", "entropy": m["entropy"]})
                _reseed_userspace()
            if req.get("files"):
                self._write_inputs(req["files"])
            if req.get("env"):
                os.environ.update(req["env"])
        except Exception as exc:  # noqa: BLE001 - bad input files: answer, run nothing
            res = {"status": "error", "message": f"could not prepare the request: {exc}",
                   "stdout": "", "stderr": "", "stdout_truncated": False,
                   "stderr_truncated": False, "files": []}
        else:
            shared["busy"] = 1
            fcntl.flock(self.lock, fcntl.LOCK_UN)    # the supervisor may watch the channel now
            t_code = time.monotonic()
            code, payload = harness.run(req.get("code", ""), req.get("inputs"))
            t_end = time.monotonic()
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            shared["busy"] = 0
            res = collect_result(shared, self.out_r, self.err_r, self.inputs_written)
            res.update(status_of_exit(code))
            res["result"] = _result_value(payload, res["stdout"])
            res["guest_timing_ms"] = {
                "prepare": round((t_code - t) * 1000, 2),
                "user_code": round((t_end - t_code) * 1000, 2),
                "collect": round((time.monotonic() - t_end) * 1000, 2),
            }
        res["op"], res["id"] = "result", req_id
        try:
            self.send(res)
        except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
            self.send({"op": "result", "id": req_id, "status": "error",
                       "message": f"guest agent could not encode the result: {exc!r}"})
        shared["sent_id"] = shared["req_id"]
        self.after(scrub=bool(m.get("scrub")))

    def after(self, scrub: bool) -> None:
        """Ready the next request once this answer is out: the base environment, the working
        directory, the OOM-kill baseline and, after a warm-up, an empty /mnt/data again."""
        os.environ.clear()
        os.environ.update(BASE_ENV)
        try:
            os.chdir(WORKDIR)
        except OSError:
            pass
        self.shared["oom_base"] = _oom_kills()
        if scrub:
            for entry in os.scandir(WORKDIR):
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except OSError as exc:
                    log(f"scrub {entry.path}: {exc}")
            self.inputs_written.clear()

    def _write_inputs(self, files: list[dict]) -> None:
        for f in files:
            name = f["name"]
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"bad input file name {name!r}")
            data = base64.b64decode(f.get("content_b64", ""))
            with open(os.path.join(WORKDIR, name), "wb") as fh:
                fh.write(data)
            self.inputs_written[name] = data


def worker_main(port: int, ctl_r: int, ctl_w: int, out_r: int, err_r: int, shared: Shared,
                preload: bool = True) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    os.environ.clear()
    os.environ.update(BASE_ENV)
    try:
        # QEMU's default CPU model advertises AMD features (svm, 3dnowprefetch) that TCG does
        # not implement; OpenBLAS then picks a kernel that dies with SIGILL. Pin a safe one.
        with open("/proc/cpuinfo") as fh:
            if "QEMU Virtual CPU" in fh.read(4096):
                BASE_ENV["OPENBLAS_CORETYPE"] = "Prescott"
                os.environ["OPENBLAS_CORETYPE"] = "Prescott"
    except OSError:
        pass
    t = time.monotonic()
    try:
        if not preload:
            raise ImportError("preloading disabled (the first worker died while importing)")
        if _meminfo_mib() < PRELOAD_MIN_MIB:
            raise ImportError(f"preloading skipped: less than {PRELOAD_MIN_MIB} MiB of memory")
        if os.path.isdir(MPL_SRC) and not os.path.exists(MPL_DIR):
            import shutil

            shutil.copytree(MPL_SRC, MPL_DIR)
            for root, dirs, names in os.walk(MPL_DIR):
                for n in [root] + [os.path.join(root, x) for x in dirs + names]:
                    os.chown(n, USER_ID, USER_ID)
        import importlib.util
        import site

        if os.path.ismount(PACKAGES_DIR):
            # ahead of the (empty) system dist-packages; addsitedir also runs the layer's .pth files
            sys.path.insert(1, PACKAGES_DIR)
            site.addsitedir(PACKAGES_DIR)
            BASE_ENV["PYTHONPATH"] = PACKAGES_DIR  # for `python3` subprocesses of user code
            os.environ["PYTHONPATH"] = PACKAGES_DIR
        for name in PRELOAD:
            if importlib.util.find_spec(name) is not None:
                __import__(name)
        if "matplotlib" in sys.modules:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
            # the font cache was just built (as root) in MPL_DIR: let the code's uid use it
            for root, dirs, names in os.walk(MPL_DIR):
                for n in [root] + [os.path.join(root, x) for x in dirs + names]:
                    os.chown(n, USER_ID, USER_ID)
        import random  # noqa: F401
        import tempfile  # noqa: F401
        import traceback  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - report, keep serving plain Python
        log(f"worker preload failed: {exc!r}")
    worker = Worker(port, ctl_r, ctl_w, out_r, err_r, shared, {})
    # Unprivileged from here on, before the host saves the VM: no request ever runs as root.
    if os.getuid() == 0:
        _drop_privileges(USER_ID)
    # Everything imported so far lives as long as the VM: keep the cyclic GC from ever walking
    # it again (a full collection over the pandas heap costs tens of ms under TCG).
    gc.collect()
    gc.freeze()
    worker.after(scrub=False)
    worker.ready = {"op": "ready", "import_s": round(time.monotonic() - t, 3), "preload": preload}
    protocol.write_all(ctl_w, protocol.encode(worker.ready))
    worker.serve()


# ----------------------------------------------------------------------------- supervisor ---

def _oom_kills() -> int:
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _memfree_mib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemFree:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0


def _meminfo_mib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return 0



class Supervisor:
    """PID 1: starts the worker, does its root operations, and stands in for it (see above)."""

    def __init__(self, port_path: str):
        self.port = os.open(port_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.shared = Shared()
        self.shared["oom_base"] = _oom_kills()
        os.close(os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600))
        self.lock = os.open(LOCK_PATH, os.O_RDWR | os.O_CLOEXEC)
        self.dec = protocol.FrameDecoder()
        self.worker_ready: dict | None = None
        self.worker_status: int | None = None
        self.spawn_worker()

    def spawn_worker(self, preload: bool = True) -> None:
        self.preload = preload
        self.worker_ready = None
        self.worker_status = None
        to_sup_r, to_sup_w = os.pipe()
        to_wrk_r, to_wrk_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
        pid = os.fork()
        if pid == 0:
            try:
                os.close(self.lock)
                for fd in (to_sup_r, to_wrk_w):
                    os.close(fd)
                devnull = os.open("/dev/null", os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                for fd in (devnull, out_w, err_w):
                    os.close(fd)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                os.set_inheritable(self.port, False)
                worker_main(self.port, to_wrk_r, to_sup_w, out_r, err_r, self.shared, preload)
            finally:
                os._exit(70)
        for fd in (to_sup_w, to_wrk_r, out_w, err_w):
            os.close(fd)
        self.worker_pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.from_worker = to_sup_r
        self.to_worker = to_wrk_w
        self.wchan = protocol.FdChannel(to_sup_r)
        self.out_r, self.err_r = out_r, err_r

    def _reap(self) -> bool:
        if self.worker_status is not None:
            return True
        pid, status = os.waitpid(self.worker_pid, os.WNOHANG)
        if pid == 0:
            return False
        self.worker_status = status
        return True

    def wait_ready(self, deadline: float) -> dict | None:
        """Wait until the worker finished its imports. A worker that died while importing
        (too little memory for numpy/pandas/matplotlib) is replaced by one without preloads."""
        while self.worker_ready is None:
            if self.worker_status is not None:
                if not self.preload:
                    return None
                log("worker died while preloading; starting one without preloads")
                self._close_worker_fds()
                self.spawn_worker(preload=False)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.from_worker, self.pidfd, self.err_r], [], [], left)
            if self.err_r in r:
                try:
                    os.read(self.err_r, READ_CHUNK)  # keep import warnings from blocking it
                except BlockingIOError:
                    pass
            if self.from_worker in r:
                try:
                    m = self.wchan.recv(time.monotonic() + 1)
                except protocol.ProtocolError:
                    m = {}
                if m.get("op") == "ready":
                    self.worker_ready = m
            if self.pidfd in r and self.worker_ready is None:
                self._reap()
        return self.worker_ready

    def _close_worker_fds(self) -> None:
        for fd in (self.to_worker, self.from_worker, self.out_r, self.err_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, message: dict) -> None:
        data = protocol.encode(message)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.port, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self.port], [], 1.0)
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ENODEV, errno.EIO):
                    if self.shared["armed"]:
                        poweroff()
                    return
                raise

    # -- while the worker lives
    def serve(self) -> None:
        if self.wait_ready(time.monotonic() + 600) is None:
            log("no worker could start: answering errors")
            return self.stand_in()
        poller = select.poll()
        poller.register(self.from_worker, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        wait_ms = DRAIN_POLL_MS[1]
        while True:
            for fd, _ev in poller.poll(wait_ms):
                if fd == self.from_worker:
                    self.root_request()
                elif fd == self.pidfd and self._reap():
                    return self.stand_in()
            wait_ms = DRAIN_POLL_MS[0] if self.watch() else DRAIN_POLL_MS[1]

    def root_request(self) -> None:
        try:
            m = self.wchan.recv(time.monotonic() + 5)
        except protocol.ProtocolError:
            return
        op = m.get("op")
        reply: dict = {"op": op}
        if op == "reseed":
            reseed_kernel(base64.b64decode(m.get("entropy", "")))
        elif op == "drop_caches":
            try:
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as fh:
                    fh.write("3")
            except OSError as exc:
                log(f"drop_caches: {exc}")
            reply["mem_free_mib"] = _memfree_mib()
        protocol.write_all(self.to_worker, protocol.encode(reply))

    def watch(self) -> bool:
        """While the code runs (lock free, busy set): drain its output, answer "partial", notice
        the host going away. True when output was moving (poll again soon)."""
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # the worker holds the channel
        try:
            if not self.shared["busy"]:
                return False
            moved = drain(self.out_r, self.shared, "out") + drain(self.err_r, self.shared, "err")
            self.read_channel()
            return moved > 0
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

    def read_channel(self) -> None:
        try:
            data = os.read(self.port, READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            if self.shared["armed"]:
                log("host went away during execution: powering off")
                poweroff()
            return
        try:
            msgs = self.dec.feed(data)
        except protocol.ProtocolError:
            self.dec = protocol.FrameDecoder()
            return
        for m in msgs:
            if m.get("op") == "partial":
                out, out_trunc = self.shared.text("out")
                err, err_trunc = self.shared.text("err")
                self.send({"op": "partial", "stdout": out, "stderr": err,
                           "stdout_truncated": out_trunc, "stderr_truncated": err_trunc})
            elif m.get("op") == "poweroff":
                poweroff()

    # -- after the worker died
    def stand_in(self) -> None:
        """Answer for a dead worker: the result of the request it was running, if it had not
        answered it, then an error for every later request (the host retires the VM)."""
        # Free once the worker is dead, unless a process the code forked shares its lock's
        # open file: then go on without it after a moment (the worker is gone either way).
        deadline = time.monotonic() + 0.5
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        sh = self.shared
        if self.worker_ready is not None and sh["req_id"] != sh["sent_id"]:
            res = collect_result(sh, self.out_r, self.err_r, {})
            res.update(self._death_status())
            res["result"] = _result_value(None, res["stdout"])
            res["op"], res["id"] = "result", sh["req_id"]
            sh["sent_id"] = sh["req_id"]
            self.send(res)
        serve_channel(self.port, sh, self.answer_without_worker)

    def answer_without_worker(self, m: dict) -> None:
        op = m.get("op")
        sh = self.shared
        if op == "hello":
            if m.get("arm"):
                sh["armed"] = 1
            self.send({"op": "hello", "ready": False, "worker": None,
                       "uptime_s": round(time.monotonic() - T0, 3),
                       "mem_mib": _meminfo_mib(), "armed": bool(sh["armed"])})
        elif op == "exec":
            self.send({"op": "accepted", "id": m.get("id")})
            self.send({"op": "result", "id": m.get("id"), "status": "error",
                       "message": "the guest worker is not running"})
        elif op == "ping":
            self.send({"op": "pong", "t": m.get("t")})
        elif op == "disarm":
            sh["armed"] = 0
            self.send({"op": "disarmed", "mem_free_mib": _memfree_mib()})
        elif op == "poweroff":
            poweroff()

    def _death_status(self) -> dict:
        """Status, exit code and message of a worker that died before answering."""
        status = self.worker_status or 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                signame = signal.Signals(sig).name
            except ValueError:
                signame = f"signal {sig}"
            if sig == signal.SIGKILL and _oom_kills() > self.shared["oom_base"]:
                return {"exit_code": -sig, "status": "out_of_memory",
                        "message": f"killed by the out-of-memory killer ({signame})"}
            return {"exit_code": -sig, "status": "failed",
                    "message": f"the process was killed by signal {signame}"}
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
        if code == 0:
            return {"exit_code": 0, "status": "succeeded",
                    "message": "the process exited early with code 0"}
        if code == harness.EXIT_MEMORY_ERROR:
            return {"exit_code": code, "status": "out_of_memory", "message": "MemoryError"}
        return {"exit_code": code, "status": "failed",
                "message": f"the process exited with code {code} before finishing"}


def _collect(file_cap: int, inputs_written: dict) -> list[dict]:
    """Files under /mnt/data, except input files left as they were written."""
    out = []
    budget = TOTAL_FILES_BUDGET
    for entry in _walk_files(WORKDIR, max_files=200):
        name, size = entry["name"], entry["size"]
        path = os.path.join(WORKDIR, name)
        if name in inputs_written and size == len(inputs_written[name]):
            try:
                with open(path, "rb") as fh:
                    if fh.read() == inputs_written[name]:
                        continue
            except OSError:
                pass
        item = {"name": name, "size": size, "truncated": True, "content_b64": None}
        if size <= file_cap and size <= budget:
            try:
                with open(path, "rb") as fh:
                    data = fh.read(file_cap + 1)
                if len(data) <= file_cap:
                    item = {"name": name, "size": len(data), "truncated": False,
                            "content_b64": base64.b64encode(data).decode()}
                    budget -= len(data)
            except OSError:
                pass
        out.append(item)
        if len(out) >= 100:
            break
    return out


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_JSON_START = frozenset('{["-0123456789tfn')


def _result_value(payload: dict | None, stdout: str):
    """harness.result_from_payload, but strict JSON only and never raising (NaN, depth...)."""
    try:
        if payload and payload.get("has_result"):
            value = json.loads(payload["result_json"], parse_constant=_reject_constant)
        else:
            value = None
            for line in reversed(stdout.splitlines()):
                line = line.strip()
                if line:
                    if line[0] in _JSON_START:  # skip the exception for plain text
                        try:
                            value = json.loads(line, parse_constant=_reject_constant)
                        except ValueError:
                            value = None
                    break
        json.dumps(value, allow_nan=False)  # must survive the frame encoder
        return value
    except (ValueError, TypeError, RecursionError, KeyError, AttributeError):
        return None


def _walk_files(top: str, max_files: int = 200, max_entries: int = 100000):
    """Regular files under `top` (iterative, so deep trees cannot exhaust the stack)."""
    stack = [top]
    seen = 0
    found = 0
    while stack and found < max_files and seen < max_entries:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            seen += 1
            try:
                if e.is_symlink():
                    continue
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    found += 1
                    yield {"name": os.path.relpath(e.path, top),
                           "size": e.stat(follow_symlinks=False).st_size}
                    if found >= max_files:
                        return
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def find_port(timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        base = "/sys/class/virtio-ports"
        try:
            for d in sorted(os.listdir(base)):
                try:
                    with open(f"{base}/{d}/name") as fh:
                        if fh.read().strip() == PORT_NAME:
                            return f"/dev/{d}"
                except OSError:
                    continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio port {PORT_NAME} not found")
        time.sleep(0.05)


def main() -> None:
    if os.getpid() == 1:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        os.makedirs(RESULT_DIR, exist_ok=True)
        try:
            os.sethostname("sandbox") if hasattr(os, "sethostname") else None
        except OSError:
            pass
    try:
        os.chown(WORKDIR, USER_ID, USER_ID)
    except OSError as exc:
        log(f"chown {WORKDIR}: {exc}")
    try:
        sup = Supervisor(find_port())
        log("supervisor up")
        sup.serve()
    except BaseException as exc:  # noqa: BLE001
        log(f"agent failed: {exc!r}")
        if os.getpid() == 1:
            poweroff()
        raise


if __name__ == "__main__":
    main()
