"""Stepwell guest agent: PID 1 of the sandbox VM after switch_root (stdlib only).

Two processes:
- the *supervisor* (PID 1) owns the virtio-serial channel to the host, speaks length-prefixed
  frames (protocol.py), writes input files, reads the worker's stdout/stderr pipes with caps,
  collects produced files and always answers, even when the worker dies;
- the *worker*, forked at boot, imports numpy, pandas and matplotlib (Agg) once and then drops
  for good to uid 65534 (keeping only CAP_SYS_BOOT, so a reboot or power-off from inside ends
  the VM; no_new_privs; RLIMIT_NPROC), all before the host saves the VM for its warm pool.
  Per request the supervisor (root) mixes host entropy into the kernel pool and forces a CRNG
  reseed; the worker then reseeds Python's and numpy's generators from it, applies the env and
  runs harness.execute in /mnt/data.

User output never reaches the channel: fds 1 and 2 of the worker are pipes read by the
supervisor, whose results travel inside JSON payloads. When the host end of the channel goes
away while the agent is armed, the VM powers itself off (restored domains outlive the host
process that restored them).
"""
from __future__ import annotations

import sys

sys.path.insert(0, "/opt/stepwell")

import base64  # noqa: E402
import ctypes  # noqa: E402
import random  # noqa: E402,F401 - imported before the snapshot, used per request
import resource  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
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


def worker_main(req_r: int, resp_w: int, preload: bool = True) -> None:
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
    # Unprivileged from here on, before the host saves the VM: no request ever runs as root.
    if os.getuid() == 0:
        _drop_privileges(USER_ID)
    chan = protocol.FdChannel(req_r)
    out = protocol.FdChannel(resp_w)
    out.send({"op": "ready", "import_s": round(time.monotonic() - t, 3), "preload": preload})
    seq = 0
    while True:
        try:
            msg = chan.recv()
        except protocol.ChannelClosed:
            os._exit(0)
        seq += 1
        t_recv = time.monotonic()
        req = msg["request"]
        _reseed_userspace()
        t_seed = time.monotonic()
        os.environ.clear()
        os.environ.update(BASE_ENV)
        os.environ.update(req.get("env") or {})
        t_env = time.monotonic()
        rfd = os.memfd_create(f"result.{seq}", os.MFD_CLOEXEC)
        t_drop = time.monotonic()
        os.chdir(WORKDIR)
        t = time.monotonic()
        code = harness.execute(req.get("code", ""), req.get("inputs"), rfd)
        elapsed = time.monotonic() - t
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        os.lseek(rfd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        os.close(rfd)
        payload = b"".join(chunks).decode("utf-8", "replace")
        out.send({"op": "done", "exit_code": code, "payload": payload, "exec_s": elapsed,
                  "prep_s": t - t_recv, "prep_seed_env_memfd_chdir_ms": [round((a - b) * 1000, 2) for a, b in (
                      (t_seed, t_recv), (t_env, t_seed), (t_drop, t_env), (t, t_drop))]})


# ----------------------------------------------------------------------------- supervisor ---

class Capture:
    def __init__(self, fd: int, cap: int):
        self.fd = fd
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False

    def read(self) -> bool:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += data[:room]
        if len(data) > max(room, 0):
            self.truncated = True
        return True

    def drain(self) -> None:
        while True:
            r, _, _ = select.select([self.fd], [], [], 0)
            if not r or not self.read():
                return

    def reset(self, cap: int) -> None:
        self.drain()
        self.buf = bytearray()
        self.truncated = False
        self.cap = cap

    def text(self) -> str:
        return bytes(self.buf).decode("utf-8", "replace")


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
    def __init__(self, port_path: str):
        self.port = os.open(port_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.dec = protocol.FrameDecoder()
        self.armed = False
        self.worker_pid = 0
        self.worker_ready: dict | None = None
        self.worker_status: int | None = None
        self.inputs_written: dict[str, bytes] = {}
        self.spawn_worker()

    # -- worker
    def spawn_worker(self, preload: bool = True) -> None:
        self.preload = preload
        self.worker_ready = None
        self.worker_status = None
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(self.port)
                for fd in (req_w, resp_r, out_r, err_r):
                    os.close(fd)
                devnull = os.open("/dev/null", os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                for fd in (devnull, out_w, err_w):
                    os.close(fd)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                worker_main(req_r, resp_w, preload)
            finally:
                os._exit(70)
        for fd in (req_r, resp_w, out_w, err_w):
            os.close(fd)
        for fd in (resp_r, out_r, err_r):
            os.set_blocking(fd, False)
        self.worker_pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.to_worker = req_w
        self.from_worker = resp_r
        self.wdec = protocol.FrameDecoder()
        self.out = Capture(out_r, 0)
        self.err = Capture(err_r, 1 << 16)

    def _worker_exited(self) -> bool:
        if self.worker_status is not None:
            return True
        pid, status = os.waitpid(self.worker_pid, os.WNOHANG)
        if pid == 0:
            return False
        self.worker_status = status
        return True

    def _read_worker(self) -> list[dict]:
        msgs = []
        while True:
            try:
                data = os.read(self.from_worker, 1 << 20)
            except BlockingIOError:
                return msgs
            if not data:
                return msgs
            msgs.extend(self.wdec.feed(data))

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
            r, _, _ = select.select([self.from_worker, self.pidfd, self.err.fd], [], [], left)
            if self.err.fd in r:
                self.err.read()  # keep import warnings from blocking the worker
            if self.from_worker in r:
                for m in self._read_worker():
                    if m.get("op") == "ready":
                        self.worker_ready = m
            if self.pidfd in r and self.worker_ready is None:
                self._worker_exited()
        return self.worker_ready

    def _close_worker_fds(self) -> None:
        for fd in (self.to_worker, self.from_worker, self.out.fd, self.err.fd, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- channel
    def send(self, message: dict) -> None:
        data = protocol.encode(message)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.port, view)
                view = view[n:]
            except BlockingIOError:
                _, w, _ = select.select([], [self.port], [], 1.0)
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ENODEV, errno.EIO):
                    if self.armed:
                        poweroff()
                    return
                raise

    def host_gone(self, revents: int) -> bool:
        return bool(revents & select.POLLHUP)

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.port, select.POLLIN)
        while True:
            events = poller.poll(1000)
            if not events:
                continue
            ev = events[0][1]
            got = False
            if ev & select.POLLIN:
                try:
                    data = os.read(self.port, 1 << 20)
                except BlockingIOError:
                    data = None
                if data:
                    got = True
                    try:
                        msgs = self.dec.feed(data)
                    except protocol.ProtocolError as exc:
                        log(f"bad frame from host: {exc}")
                        self.dec = protocol.FrameDecoder()
                        msgs = []
                    for m in msgs:
                        self.handle(m)
            if not got and self.host_gone(ev):
                if self.armed:
                    log("host went away: powering off")
                    poweroff()
                time.sleep(0.02)

    def handle(self, m: dict) -> None:
        op = m.get("op")
        if op == "hello":
            ready = self.wait_ready(time.monotonic() + float(m.get("wait_s", 120)))
            if m.get("arm"):
                self.armed = True
            self.send({
                "op": "hello", "ready": ready is not None, "worker": ready,
                "uptime_s": round(time.monotonic() - T0, 3), "mem_mib": _meminfo_mib(),
                "armed": self.armed,
            })
        elif op == "disarm":
            # Before the host saves this VM: stop powering off on disconnect, and drop clean
            # caches (freed pages are zeroed, init_on_free=1) so the saved state stays small.
            self.armed = False
            if m.get("drop_caches"):
                try:
                    os.sync()
                    with open("/proc/sys/vm/drop_caches", "w") as fh:
                        fh.write("3")
                except OSError as exc:
                    log(f"drop_caches: {exc}")
            self.send({"op": "disarmed", "mem_free_mib": _memfree_mib()})
        elif op == "ping":
            self.send({"op": "pong", "t": m.get("t")})
        elif op == "exec":
            self.send({"op": "accepted", "id": m.get("id")})
            try:
                res = self.execute(m)
            except Exception as exc:  # noqa: BLE001 - the host must always get an answer
                res = {"status": "error", "message": f"guest agent error: {exc!r}"}
            res["op"] = "result"
            res["id"] = m.get("id")
            try:
                self.send(res)
            except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
                self.send({"op": "result", "id": m.get("id"), "status": "error",
                           "message": f"guest agent could not encode the result: {exc!r}"})
        elif op == "poweroff":
            poweroff()
        else:
            self.send({"op": "error", "message": f"unknown op {op!r}"})

    def _answer_during_exec(self) -> None:
        """The host may ask for the output so far (it does at a timeout, before the kill)."""
        try:
            data = os.read(self.port, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            if self.armed:
                poweroff()
            time.sleep(0.02)
            return
        try:
            msgs = self.dec.feed(data)
        except protocol.ProtocolError:
            self.dec = protocol.FrameDecoder()
            return
        for m in msgs:
            if m.get("op") == "partial":
                self.out.drain()
                self.err.drain()
                self.send({"op": "partial", "stdout": self.out.text(), "stderr": self.err.text(),
                           "stdout_truncated": self.out.truncated,
                           "stderr_truncated": self.err.truncated})

    def _write_inputs(self, files: list[dict]) -> None:
        for f in files:
            name = f["name"]
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"bad input file name {name!r}")
            data = base64.b64decode(f.get("content_b64", ""))
            path = os.path.join(WORKDIR, name)
            with open(path, "wb") as fh:
                fh.write(data)
            os.chown(path, USER_ID, USER_ID)
            self.inputs_written[name] = data

    def _collect(self, file_cap: int) -> list[dict]:
        out = []
        budget = TOTAL_FILES_BUDGET
        for entry in _walk_files(WORKDIR, max_files=200):
            name, size = entry["name"], entry["size"]
            path = os.path.join(WORKDIR, name)
            if name in self.inputs_written and size == len(self.inputs_written[name]):
                try:
                    with open(path, "rb") as fh:
                        if fh.read() == self.inputs_written[name]:
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

    def execute(self, m: dict) -> dict:
        req = dict(m.get("request") or {})
        warm = bool(m.get("warm"))
        if self.worker_ready is None and self.worker_status is None:
            self.wait_ready(time.monotonic() + 120)
        if self._worker_exited():
            return {"status": "error", "message": "the guest worker is not running"}
        self.out.reset(int(req.get("stdout_cap", harness_cap())))
        self.err.reset(int(req.get("stderr_cap", harness_cap())))
        files = req.pop("files", None) or []
        if not warm:
            self._write_inputs(files)
        oom_before = _oom_kills()
        t = time.monotonic()
        reseed_kernel(base64.b64decode(m.get("entropy", "")))
        protocol.write_all(self.to_worker, protocol.encode(
            {"op": "exec", "request": req, "warm": warm}))
        done = None
        poller = select.poll()
        for fd in (self.from_worker, self.out.fd, self.err.fd, self.pidfd):
            poller.register(fd, select.POLLIN)
        poller.register(self.port, select.POLLIN)  # POLLHUP is always reported
        open_fds = {self.out.fd, self.err.fd}
        while done is None:
            for fd, ev in poller.poll(1000):
                if fd == self.port:
                    if ev & select.POLLIN:
                        self._answer_during_exec()
                    elif ev & select.POLLHUP and self.armed:
                        log("host went away during execution: powering off")
                        poweroff()
                    continue
                if fd == self.from_worker:
                    for msg in self._read_worker():
                        if msg.get("op") == "done":
                            done = msg
                elif fd in open_fds:
                    cap = self.out if fd == self.out.fd else self.err
                    if not cap.read():
                        poller.unregister(fd)
                        open_fds.discard(fd)
                elif fd == self.pidfd:
                    if self._worker_exited():
                        for msg in self._read_worker():
                            if msg.get("op") == "done":
                                done = msg
                        if done is None:
                            done = {"op": "died"}
                    poller.unregister(self.pidfd)
        elapsed = time.monotonic() - t
        t_collect = time.monotonic()
        self.out.drain()
        self.err.drain()
        stdout, stderr = self.out.text(), self.err.text()
        res: dict = {
            "stdout": stdout, "stderr": stderr,
            "stdout_truncated": self.out.truncated, "stderr_truncated": self.err.truncated,
            "guest_exec_ms": round(elapsed * 1000, 3),
        }
        if done.get("op") == "done":
            code = int(done.get("exit_code", 1))
            try:
                payload = json.loads(done["payload"]) if done.get("payload") else None
            except ValueError:
                payload = None
            res["exit_code"] = code
            if code == 0:
                res["status"], res["message"] = "succeeded", ""
            elif code == harness.EXIT_MEMORY_ERROR:
                res["status"], res["message"] = "out_of_memory", "MemoryError: the code ran out of memory"
            else:
                res["status"], res["message"] = "failed", f"the code exited with code {code}"
        else:
            payload = None
            status = self.worker_status or 0
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                res["exit_code"] = -sig
                try:
                    signame = signal.Signals(sig).name
                except ValueError:
                    signame = f"signal {sig}"
                if sig == signal.SIGKILL and _oom_kills() > oom_before:
                    res["status"] = "out_of_memory"
                    res["message"] = f"killed by the out-of-memory killer ({signame})"
                else:
                    res["status"] = "failed"
                    res["message"] = f"the process was killed by signal {signame}"
            else:
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
                res["exit_code"] = code
                if code == 0:
                    res["status"], res["message"] = "succeeded", "the process exited early with code 0"
                elif code == harness.EXIT_MEMORY_ERROR:
                    res["status"], res["message"] = "out_of_memory", "MemoryError"
                else:
                    res["status"] = "failed"
                    res["message"] = f"the process exited with code {code} before finishing"
        try:
            res["result"] = _result_value(payload, stdout)
        except Exception:  # noqa: BLE001
            res["result"] = None
        res["files"] = self._collect(int(req.get("file_cap", 8 << 20)))
        res["guest_timing_ms"] = {
            "worker_prep": round(float(done.get("prep_s", 0)) * 1000, 2),
            "worker_prep_detail": done.get("prep_seed_env_memfd_chdir_ms"),
            "user_code": round(float(done.get("exec_s", 0)) * 1000, 2),
            "collect": round((time.monotonic() - t_collect) * 1000, 2),
            "total": round((time.monotonic() - t) * 1000, 2),
        }
        return res


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _result_value(payload: dict | None, stdout: str):
    """harness.result_from_payload, but strict JSON only and never raising (NaN, depth...)."""
    try:
        if payload and payload.get("has_result"):
            value = json.loads(payload["result_json"], parse_constant=_reject_constant)
        else:
            value = None
            for line in reversed(stdout.splitlines()):
                if line.strip():
                    try:
                        value = json.loads(line, parse_constant=_reject_constant)
                    except ValueError:
                        value = None
                    break
        json.dumps(value, allow_nan=False)  # must survive the frame encoder
        return value
    except (ValueError, TypeError, RecursionError, KeyError):
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


def harness_cap() -> int:
    return 1024 * 1024


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
