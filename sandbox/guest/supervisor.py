"""The guest agent's supervisor (PID 1, root): forks the worker and waits for its imports,
does the root-only work (kernel CRNG reseed, dropping caches), watches the channel while the
code runs (drains output, answers "partial") and stands in for the worker when it dies."""
from __future__ import annotations

import base64
import fcntl
import os
import select
import signal
import struct
import time

from sandbox import outcome, protocol
from sandbox.guest import channel, procfs
from sandbox.guest.shared import (
    LOCK_PATH, READ_CHUNK, Shared, collect_result, drain, log, poweroff,
)
from sandbox.guest.worker import worker_main

PIPE_SIZE = 1 << 20   # the worker's stdout/stderr pipes (the default pipe-max-size)
DRAIN_POLL_MS = (2, 100)      # while the code prints / otherwise
RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207


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


def drop_caches() -> None:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3")
    except OSError as exc:
        log(f"drop_caches: {exc}")


class Supervisor:
    """PID 1: starts the worker, does its root operations, and stands in for it (agent.py)."""

    def __init__(self, port_path: str):
        self.port = os.open(port_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.shared = Shared()
        self.shared["oom_base"] = procfs.oom_kills()
        os.close(os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600))
        self.lock = os.open(LOCK_PATH, os.O_RDWR | os.O_CLOEXEC)
        self.dec = protocol.FrameDecoder()
        self.worker_ready: dict | None = None
        self.worker_status: int | None = None
        self.spawn_worker()

    def send(self, message: dict) -> None:
        channel.send(self.port, message, self.shared)

    # -- the worker's life
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
            drop_caches()
            reply["mem_free_mib"] = procfs.mem_free_mib()
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
                self.send(channel.partial_reply(self.shared))
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
            res["result"] = outcome.result_value(None, res["stdout"])
            res["op"], res["id"] = "result", sh["req_id"]
            sh["sent_id"] = sh["req_id"]
            self.send(res)
        channel.serve(self.port, sh, self.answer_without_worker)

    def answer_without_worker(self, m: dict) -> None:
        op = m.get("op")
        if channel.answer_common(self.port, self.shared, m, None):
            return
        if op == "exec":
            self.send({"op": "accepted", "id": m.get("id")})
            self.send({"op": "result", "id": m.get("id"), "status": outcome.ERROR,
                       "message": "the guest worker is not running"})
        elif op == "disarm":
            self.shared["armed"] = 0
            self.send({"op": "disarmed", "mem_free_mib": procfs.mem_free_mib()})

    def _death_status(self) -> dict:
        """Status, exit code and message of a worker that died before answering."""
        status = self.worker_status or 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            oom = sig == signal.SIGKILL and procfs.oom_kills() > self.shared["oom_base"]
            st, message = outcome.killed(sig, oom=oom)
            return {"exit_code": -sig, "status": st, "message": message}
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
        st, message = outcome.exited(code, finished=False)
        return {"exit_code": code, "status": st, "message": message}
