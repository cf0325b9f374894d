"""Stateful sessions in the guest: one long-lived Python process that keeps a namespace between
requests (`request.isolation == "session"`; the host holds this VM for one session key,
sandbox/sessions.py).

At the first session request the worker forks the session child (like zygote's child: it closes
the channel, the channel lock and the worker's control pipes; it already runs as the code's uid,
and reseeds Python's and numpy's generators). The child keeps one namespace dict and runs each
request's code in it with harness.run_session (the last expression's value is the result), with
the request's env applied and the cwd kept from call to call; stdout and stderr are the worker's
pipes, so output is captured per request exactly as on the single-use path. The worker relays:
it writes the request to the child's pipe, lets the supervisor watch the channel while the code
runs, reads the child's answer (or notices its death through a pidfd) and answers the host.

Nothing is wiped between requests; a file left unchanged since the previous request is not
returned again as a produced file. The reply says `isolation: "session"` and whether the child
still lives (`session_alive`): the host keeps the VM only when it does and the status is
succeeded or failed. When the child died (os._exit, a signal, the OOM killer) the state is
gone: the host destroys the VM and the next request of the key starts a new session.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import time

from sandbox import harness, outcome, protocol
from sandbox.guest import channel, procfs
from sandbox.guest.shared import WORKDIR, collect_result, log

LEN = struct.Struct("<I")
CHILD_EXIT = 70
SESSION_FILENAME = "<session>"


def _write_msg(fd: int, data: bytes) -> None:
    protocol.write_all(fd, LEN.pack(len(data)) + data)


def _read_exact(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _child_loop(req_r: int, res_w: int) -> None:
    """The session child: run each request in one namespace, answer with the payload."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        try:
            (n,) = LEN.unpack(_read_exact(req_r, LEN.size))
            req = json.loads(_read_exact(req_r, n))
        except (EOFError, OSError, ValueError):
            os._exit(0)
        if req.get("env"):
            os.environ.update(req["env"])
        try:
            os.getcwd()
        except OSError:  # the code removed its cwd
            os.chdir(WORKDIR)
        t = time.monotonic()
        code, payload = harness.run_session(req.get("code", ""), namespace, req.get("inputs"),
                                            SESSION_FILENAME)
        ms = round((time.monotonic() - t) * 1000, 2)
        _write_msg(res_w, json.dumps({"exit_code": code, "payload": payload, "ms": ms}).encode())


class Session:
    """The worker's session mode (made at the first session request of this VM)."""

    def __init__(self, worker):
        self.worker = worker
        self.pid = 0
        self.calls = 0
        self.alive = False
        self.seen: dict = {}   # files under /mnt/data after the last request (not produced again)

    def _start_child(self) -> None:
        w = self.worker
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(req_w)
                os.close(res_r)
                for fd in (w.port, w.lock, w.ctl_r, w.ctl_w, w.out_r, w.err_r):
                    os.close(fd)
                os.chdir(WORKDIR)
                from sandbox.guest.worker import _reseed_userspace

                _reseed_userspace()
                _child_loop(req_r, res_w)
            finally:
                os._exit(CHILD_EXIT)
        os.close(req_r)
        os.close(res_w)
        self.pid, self.req_w, self.res_r = pid, req_w, res_r
        self.pidfd = os.pidfd_open(pid)
        self.alive = True

    def execute(self, m: dict) -> None:
        w = self.worker
        sh = w.shared
        t = time.monotonic()
        req_id = m.get("id")
        if isinstance(req_id, int):  # the common case, without a JSON encoder on the hot path
            channel.write(w.port, protocol.frame(b'{"op":"accepted","id":%d}' % req_id), sh)
        else:
            w.send({"op": "accepted", "id": req_id})
        req = m.get("request") or {}
        sh.begin(req_id if isinstance(req_id, int) else -1, req)
        w.inputs_written.clear()
        res: dict
        try:
            if not self.alive and self.calls:
                raise RuntimeError("the session's process is gone")
            if m.get("entropy"):
                w.ask_supervisor({"op": "reseed", "entropy": m["entropy"]})
                from sandbox.guest.worker import _reseed_userspace

                _reseed_userspace()
            if req.get("files"):
                w._write_inputs(req["files"])
            if not self.alive:
                self._start_child()
        except Exception as exc:  # noqa: BLE001 - bad input files: answer, run nothing
            res = {"status": outcome.ERROR, "message": f"could not prepare the request: {exc}",
                   "stdout": "", "stderr": "", "stdout_truncated": False,
                   "stderr_truncated": False, "files": []}
        else:
            res = self._run(req, t)
        self.calls += 1
        res["op"], res["id"] = "result", req_id
        res["isolation"] = "session"
        res["session_alive"] = self.alive
        res["session_calls"] = self.calls
        try:
            w.send(res)
        except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
            w.send({"op": "result", "id": req_id, "status": outcome.ERROR,
                    "isolation": "session", "session_alive": self.alive,
                    "message": f"guest agent could not encode the result: {exc!r}"})
        sh["sent_id"] = sh["req_id"]
        sh["oom_base"] = procfs.oom_kills()

    def _run(self, req: dict, t: float) -> dict:
        w = self.worker
        sh = w.shared
        msg = {"code": req.get("code", ""), "inputs": req.get("inputs")}
        if req.get("env"):
            msg["env"] = req["env"]
        t_code = time.monotonic()
        sh["busy"] = 1
        fcntl.flock(w.lock, fcntl.LOCK_UN)    # the supervisor may watch the channel now
        answer, status = None, None
        try:
            _write_msg(self.req_w, json.dumps(msg).encode())
            r, _, _ = select.select([self.res_r, self.pidfd], [], [])
            if self.res_r in r:
                (n,) = LEN.unpack(_read_exact(self.res_r, LEN.size))
                answer = json.loads(_read_exact(self.res_r, n))
        except (EOFError, OSError, ValueError):   # a broken pipe too: the child is gone
            answer = None
        if answer is None:   # the child died: its state is gone
            status = self._reap()
        t_end = time.monotonic()
        fcntl.flock(w.lock, fcntl.LOCK_EX)
        sh["busy"] = 0
        res = collect_result(sh, w.out_r, w.err_r, w.inputs_written, seen=self.seen)
        if answer is not None:
            code = int(answer.get("exit_code", 1))
            res["status"], res["message"] = outcome.exited(code)
            res["exit_code"] = code
            res["result"] = outcome.result_value(answer.get("payload"), "")
        else:
            if status is not None and os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                oom = sig == signal.SIGKILL and procfs.oom_kills() > sh["oom_base"]
                res["status"], res["message"] = outcome.killed(sig, oom=oom)
                res["exit_code"] = -sig
            else:
                code = os.WEXITSTATUS(status) if status is not None else CHILD_EXIT
                res["status"], res["message"] = outcome.exited(code, finished=False)
                res["exit_code"] = code
            res["message"] = (res["message"] + "; " if res["message"] else "") + \
                "the session's process ended, its state is gone"
            res["result"] = None
        res["guest_timing_ms"] = {
            "prepare": round((t_code - t) * 1000, 2),
            "user_code": round((t_end - t_code) * 1000, 2),
            "collect": round((time.monotonic() - t_end) * 1000, 2),
            "session_code": (answer or {}).get("ms"),   # in the session's process
        }
        return res

    def _reap(self) -> int | None:
        self.alive = False
        for fd in (self.req_w, self.res_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            _pid, status = os.waitpid(self.pid, 0)
            return status
        except ChildProcessError:
            log("session child already reaped")
            return None

