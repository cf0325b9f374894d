"""Workflow isolation in the guest: a request in a fresh process forked from the preloaded worker,
and the VM cleaned before the next request (the host may reuse this VM for later executions of
the same workflow version and owner, sandbox/libvirt/reuse.py).

Per request (`request.isolation == "workflow"`):
- the worker forks; the child closes the channel, the channel lock and the worker's control
  pipes, applies the request's environment, reseeds Python's and numpy's generators from the
  kernel CRNG (itself reseeded with host entropy after the VM's restore) and runs the code
  (harness.execute, the result value through a pipe). Environment, module state and
  `sys.modules` changes die with the child: the worker never ran the code.
- the worker waits for it (as the channel lock's holder gives the channel to the supervisor
  while the code runs, as in the single-use path), reads its result and answers;
- then, before it reads the next request: every process of the code's uid except the worker
  and the processes started before it (the egress forwarder) is killed and reaped (the worker
  is a child subreaper, so orphans come back to it), System V IPC objects are removed, and
  /tmp, /mnt/data and /dev/shm are emptied (matplotlib's config folder in /tmp is copied
  again). When anything is left, the VM powers itself off: the host then never hands it a
  request again (a request it did not accept is retried on another VM).

Not covered: POSIX message queues (not listable without mounting mqueue); the code cannot reach
the worker's memory (it is not dumpable) but can kill it, which ends the VM's reuse.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import stat
import time

from sandbox import harness, outcome, protocol
from sandbox.guest import procfs
from sandbox.guest.shared import USER_ID, WORKDIR, collect_result, libc, log, poweroff

PR_SET_CHILD_SUBREAPER = 36
WIPE = ("/tmp", WORKDIR, "/dev/shm")
KILL_ROUNDS = 50
IPC_RMID = 0


def _starttime(pid: int | str) -> int | None:
    """Start time (clock ticks after boot) and state of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19]) if fields[0] != b"Z" else None


def _uid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Zygote:
    """The worker's fork-per-request mode (made at the first such request)."""

    def __init__(self, worker):
        self.worker = worker
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.pid = os.getpid()
        self.born = _starttime(self.pid) or 0
        self.served = 0

    # -- one request
    def execute(self, m: dict) -> None:
        w = self.worker
        sh = w.shared
        t = time.monotonic()
        req_id = m.get("id")
        w.send({"op": "accepted", "id": req_id})
        req = m.get("request") or {}
        sh.begin(req_id if isinstance(req_id, int) else -1, req)
        armed = sh["armed"]
        res: dict
        try:
            if m.get("entropy"):
                w.ask_supervisor({"op": "reseed", "entropy": m["entropy"]})
            if req.get("files"):
                w._write_inputs(req["files"])
        except Exception as exc:  # noqa: BLE001 - bad input files: answer, run nothing
            res = {"status": outcome.ERROR, "message": f"could not prepare the request: {exc}",
                   "stdout": "", "stderr": "", "stdout_truncated": False,
                   "stderr_truncated": False, "files": []}
        else:
            res = self._run_child(req, t)
        sh["armed"] = armed   # the child shared the mapping: nothing it wrote there stays
        res["op"], res["id"] = "result", req_id
        res["isolation"] = "workflow"
        self.served += 1
        res["served"] = self.served
        try:
            w.send(res)
        except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
            w.send({"op": "result", "id": req_id, "status": outcome.ERROR,
                    "message": f"guest agent could not encode the result: {exc!r}"})
        sh["sent_id"] = sh["req_id"]
        t_clean = time.monotonic()
        problem = self.clean()
        if problem:
            log(f"workflow isolation: {problem}; powering off")
            poweroff()
        t_after = time.monotonic()
        w.after(scrub=False)
        self.last_clean_parts["after"] = round((time.monotonic() - t_after) * 1000, 2)
        self.last_clean_ms = round((time.monotonic() - t_clean) * 1000, 2)

    def _run_child(self, req: dict, t: float) -> dict:
        w = self.worker
        sh = w.shared
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                os.close(rfd)
                for fd in (w.port, w.lock, w.ctl_r, w.ctl_w, w.out_r, w.err_r):
                    os.close(fd)
                libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
                if req.get("env"):
                    os.environ.update(req["env"])
                os.chdir(WORKDIR)
                from sandbox.guest.worker import _reseed_userspace

                _reseed_userspace()
                code = harness.execute(req.get("code", ""), req.get("inputs"), wfd)
            finally:
                os._exit(code)
        os.close(wfd)
        t_code = time.monotonic()
        sh["busy"] = 1
        fcntl.flock(w.lock, fcntl.LOCK_UN)    # the supervisor may watch the channel now
        chunks = []
        # the result payload until the child ends (a process the code forked may hold the
        # pipe's other end: the child's exit, not the pipe's EOF, ends the wait)
        pidfd = os.pidfd_open(pid)
        os.set_blocking(rfd, False)
        try:
            while True:
                r, _, _ = select.select([rfd, pidfd], [], [])
                if rfd in r and self._read(rfd, chunks) == 0:
                    os.close(rfd)
                    rfd = -1
                    select.select([pidfd], [], [])
                    break
                if pidfd in r:
                    self._read(rfd, chunks)
                    break
        finally:
            os.close(pidfd)
            if rfd >= 0:
                os.close(rfd)
        _pid, status, usage = os.wait4(pid, 0)
        t_end = time.monotonic()
        fcntl.flock(w.lock, fcntl.LOCK_EX)
        sh["busy"] = 0
        res = collect_result(sh, w.out_r, w.err_r, w.inputs_written)
        try:
            payload = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            payload = {}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            oom = sig == signal.SIGKILL and procfs.oom_kills() > sh["oom_base"]
            res["status"], res["message"] = outcome.killed(sig, oom=oom)
            res["exit_code"] = -sig
        else:
            code = os.WEXITSTATUS(status)
            res["status"], res["message"] = outcome.exited(code, finished=bool(chunks))
            res["exit_code"] = code
        res["result"] = outcome.result_value(payload if chunks else None, res["stdout"])
        res["peak_memory_bytes"] = 1024 * usage.ru_maxrss
        res["guest_timing_ms"] = {
            "prepare": round((t_code - t) * 1000, 2),
            "user_code": round((t_end - t_code) * 1000, 2),
            "collect": round((time.monotonic() - t_end) * 1000, 2),
            "clean_before": getattr(self, "last_clean_ms", 0.0),
            "clean_parts": getattr(self, "last_clean_parts", {}),
        }
        return res

    @staticmethod
    def _read(fd: int, chunks: list) -> int:
        """Read what the pipe holds now; -1 when it would block, 0 at its end."""
        n = -1
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return n
            if not data:
                return 0
            chunks.append(data)
            n = len(data)

    # -- between requests
    def clean(self) -> str:
        """Kill the code's processes, remove its IPC objects and files; "" when all is gone,
        else what is left. The milliseconds of each part go to the next answer's timings."""
        parts: dict[str, float] = {}
        t = time.monotonic()

        def lap(name: str) -> None:
            nonlocal t
            now = time.monotonic()
            parts[name] = round((now - t) * 1000, 2)
            t = now

        self.last_clean_parts = parts
        left = self.kill_processes()
        lap("kill")
        if left:
            return f"processes left: {left}"
        remove_sysv_ipc()
        lap("ipc")
        for top in WIPE:
            try:
                wipe(top)
            except OSError as exc:
                return f"cannot empty {top}: {exc}"
            if os.listdir(top):
                return f"{top} is not empty: {os.listdir(top)[:5]}"
        try:
            os.chmod(WORKDIR, 0o755)
        except OSError as exc:
            return f"chmod {WORKDIR}: {exc}"
        lap("wipe")
        from sandbox.guest.worker import MPL_DIR, MPL_SRC

        if os.path.isdir(MPL_SRC):
            shutil.copytree(MPL_SRC, MPL_DIR)
        lap("mpl")
        self.worker.inputs_written.clear()   # (worker.after() takes the OOM-kill baseline)
        return ""

    def kill_processes(self) -> list[int]:
        """SIGKILL every live process of the code's uid that started after the worker (the
        forwarder started before it), until none is left; reap what comes back to us.

        Every process the code started descends from this worker, and the worker is a child
        subreaper, so one orphaned on the way is its child again: when, once reaped, it has no
        child at all, nothing is left to kill and the scan of /proc (most of the cleaning time
        under software emulation) is skipped."""
        if not self.reap():
            return []
        victims: list[int] = []
        for _ in range(KILL_ROUNDS):
            victims = []
            for name in os.listdir("/proc"):
                if not name.isdigit() or int(name) == self.pid:
                    continue
                start = _starttime(name)   # first: one read sets aside every older process
                if start is None or start <= self.born:
                    continue   # a zombie (reaped below) or older than the worker
                if _uid(name) != USER_ID:
                    continue
                victims.append(int(name))
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.reap()
            if not victims:
                return []
            time.sleep(0.002)
        return victims

    @staticmethod
    def reap() -> bool:
        """Reap every child that ended; True when children are left (alive)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True


def wipe(top: str) -> None:
    """Remove everything under `top` (folders the code made unreadable are opened again)."""
    for entry in os.scandir(top):
        _remove(entry.path)


def _remove(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if st.st_mode & 0o700 != 0o700:
        os.chmod(path, 0o700)
    for entry in os.scandir(path):
        _remove(entry.path)
    os.rmdir(path)


def remove_sysv_ipc() -> None:
    """Remove every System V shared memory segment, message queue and semaphore set the code's
    uid owns (they outlive the processes that made them)."""
    rm = (("shm", libc.shmctl, 1, 7), ("msg", libc.msgctl, 1, 7), ("sem", libc.semctl, 1, 4))
    for kind, ctl, id_col, uid_col in rm:
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                rows = [line.split() for line in fh.readlines()[1:]]
        except OSError:
            continue
        for row in rows:
            try:
                if int(row[uid_col]) != USER_ID:
                    continue
                if kind == "sem":
                    ctl(int(row[id_col]), 0, IPC_RMID, None)
                else:
                    ctl(int(row[id_col]), IPC_RMID, ctypes.c_void_p(None))
            except (ValueError, IndexError):
                continue

