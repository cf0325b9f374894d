"""The guest agent's worker: forked by the supervisor at boot, drops to uid 65534 for good,
imports the heavy packages once (as that uid), then owns the channel and runs every request in
this one process (reads it, answers "accepted", runs the code through the harness, sends the
result)."""
from __future__ import annotations

import base64
import ctypes
import fcntl
import gc
import os
import random
import resource
import shutil
import struct
import sys
import time

from sandbox import harness, outcome, protocol
from sandbox.egress.forwarder import PROXY_ENV
from sandbox.guest import channel, procfs, session, zygote
from sandbox.guest.shared import (
    LOCK_PATH, USER_ID, WORKDIR, Shared, collect_result, libc, log,
)

MPL_SRC = "/opt/stepwell/mplconfig"
MPL_DIR = "/tmp/.mpl"
PACKAGES_DIR = "/opt/stepwell/packages"   # the runtime's package layer (vdb), see sandbox/layers.py
PRELOAD = ("numpy", "pandas", "matplotlib")  # imported before the state is saved, when present
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
    **PROXY_ENV,   # code egress: the forwarder on the guest's loopback (guest/egress.py)
}

PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
CAP_SYS_BOOT = 22
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


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


def _chown_tree(top: str, uid: int = USER_ID) -> None:
    for root, dirs, names in os.walk(top):
        for n in [root] + [os.path.join(root, x) for x in dirs + names]:
            os.chown(n, uid, uid)


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
        self.zygote: zygote.Zygote | None = None   # fork per request (workflow isolation)
        self.session: session.Session | None = None   # one process kept (stateful sessions)

    def send(self, message: dict) -> None:
        channel.send(self.port, message, self.shared)

    def ask_supervisor(self, message: dict) -> dict:
        """Root's operations (kernel reseed, drop caches): off the request path of a warm slot."""
        protocol.write_all(self.ctl_w, protocol.encode(message))
        return self.ctl.recv(time.monotonic() + 60)

    def serve(self) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        channel.serve(self.port, self.shared, self.handle)

    def handle(self, m: dict) -> None:
        op = m.get("op")
        if op == "exec":
            self.execute(m)
        elif channel.answer_common(self.port, self.shared, m, self.ready):
            pass
        elif op == "disarm":
            # Before the host saves this VM: stop powering off on disconnect, and drop clean
            # caches (freed pages are zeroed, init_on_free=1) so the saved state stays small.
            self.shared["armed"] = 0
            reply = self.ask_supervisor({"op": "drop_caches"} if m.get("drop_caches") else {"op": "noop"})
            self.send({"op": "disarmed", "mem_free_mib": reply.get("mem_free_mib", procfs.mem_free_mib())})
        elif op == "partial":  # only while idle: nothing runs
            self.send(channel.partial_reply(None))
        else:
            self.send({"op": "error", "message": f"unknown op {op!r}"})

    def execute(self, m: dict) -> None:
        if self.session is not None or (m.get("request") or {}).get("isolation") == "session":
            # a VM held for one session key: every request in the session's one process
            self.session = self.session or session.Session(self)
            return self.session.execute(m)
        if self.zygote is not None or (m.get("request") or {}).get("isolation") == "workflow":
            # a VM the host may reuse: every request in a fresh child, the VM cleaned after it
            self.zygote = self.zygote or zygote.Zygote(self)
            return self.zygote.execute(m)
        t = time.monotonic()
        req_id = m.get("id")
        if isinstance(req_id, int):  # the common case, without a JSON encoder on the hot path
            channel.write(self.port, protocol.frame(b'{"op":"accepted","id":%d}' % req_id), self.shared)
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
            res = {"status": outcome.ERROR, "message": f"could not prepare the request: {exc}",
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
            res["status"], res["message"] = outcome.exited(code)
            res["exit_code"] = code
            res["result"] = outcome.result_value(payload, res["stdout"])
            # peak resident memory of the code's process and of the children it waited for
            res["peak_memory_bytes"] = 1024 * max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            res["guest_timing_ms"] = {
                "prepare": round((t_code - t) * 1000, 2),
                "user_code": round((t_end - t_code) * 1000, 2),
                "collect": round((time.monotonic() - t_end) * 1000, 2),
            }
        res["op"], res["id"] = "result", req_id
        try:
            self.send(res)
        except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
            self.send({"op": "result", "id": req_id, "status": outcome.ERROR,
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
        self.shared["oom_base"] = procfs.oom_kills()
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


PRELOAD_UID: int | None = None  # the uid the preload ran as (a test reads it from user code)


def _preload(preload: bool) -> None:
    """Import numpy, pandas and matplotlib (Agg) when present and memory allows, with the
    runtime's package layer on the path; failures leave plain Python serving. Runs after the
    drop to the code's uid: package code (`.pth` files, imports) never runs as root."""
    if not preload:
        raise ImportError("preloading disabled (the first worker died while importing)")
    if procfs.mem_total_mib() < PRELOAD_MIN_MIB:
        raise ImportError(f"preloading skipped: less than {PRELOAD_MIN_MIB} MiB of memory")
    global PRELOAD_UID
    PRELOAD_UID = os.geteuid()
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
    import tempfile  # noqa: F401
    import traceback  # noqa: F401


def worker_main(port: int, ctl_r: int, ctl_w: int, out_r: int, err_r: int, shared: Shared,
                preload: bool = True) -> None:
    procfs.set_oom_score_adj(1000)
    os.environ.clear()
    os.environ.update(BASE_ENV)
    if procfs.qemu_cpu_model():
        # QEMU's default CPU model advertises AMD features (svm, 3dnowprefetch) that TCG does
        # not implement; OpenBLAS then picks a kernel that dies with SIGILL. Pin a safe one.
        BASE_ENV["OPENBLAS_CORETYPE"] = "Prescott"
        os.environ["OPENBLAS_CORETYPE"] = "Prescott"
    t = time.monotonic()
    if os.path.isdir(MPL_SRC) and not os.path.exists(MPL_DIR):
        shutil.copytree(MPL_SRC, MPL_DIR)   # matplotlib's config and font cache, the code's
        _chown_tree(MPL_DIR)
    worker = Worker(port, ctl_r, ctl_w, out_r, err_r, shared, {})
    # Unprivileged from here on, before any package code runs and before the host saves the
    # VM: neither the preloaded packages (and a layer's .pth files) nor a request run as root.
    if os.getuid() == 0:
        _drop_privileges(USER_ID)
    try:
        _preload(preload)
    except Exception as exc:  # noqa: BLE001 - report, keep serving plain Python
        log(f"worker preload failed: {exc!r}")
    # Everything imported so far lives as long as the VM: keep the cyclic GC from ever walking
    # it again (a full collection over the pandas heap costs tens of ms under TCG).
    gc.collect()
    gc.freeze()
    worker.after(scrub=False)
    worker.ready = {"op": "ready", "import_s": round(time.monotonic() - t, 3), "preload": preload}
    protocol.write_all(ctl_w, protocol.encode(worker.ready))
    worker.serve()

