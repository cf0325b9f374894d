"""Stateful sessions on the process driver: one bubblewrap sandbox held per session key, running
`harness.py --session` (harness.session_main), which keeps one namespace between requests.

The sandbox is built as for a single execution (sandbox/process_driver.py: its own uid, tmpfs
working directory, pids/memory/freezer/cpuacct groups, egress proxy, bubblewrap namespaces),
from the session's first request (memory limit, environment); it then lives until the session
ends (sandbox/sessions.py: idle reaper, end_session, or an execution that ends in timeout,
out of memory, killed or error, or the session's process dying). Per request: input files are
written into the working directory, the request goes to the harness's stdin, stdout/stderr are
read until the harness's answer arrives on fd 3, and the produced files (new or changed since
the previous request) are collected while the sandbox's processes are frozen (cgroup freezer:
nothing can swap a file for a symlink meanwhile; without a freezer no files are collected).
The egress proxy is the session's: each request sets its allow-list and gets its own records.
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import selectors
import shutil
import struct
import subprocess
import threading
import time
from concurrent.futures import Future

from sandbox import cancel, limits, outcome, streaming
from sandbox.config import egress_limits_from_env
from sandbox.contract import WORKDIR, ExecutionRequest, ExecutionResult, OutputFile, Status

LEN = struct.Struct("<I")


class _Spawner:
    """Starts session sandboxes from one thread that lives as long as the process. bubblewrap's
    --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that forked it ends, and the
    sandbox service serves each call on a thread of its own: a session started from that
    thread died with it, before the session's next call. From here it dies with the service."""

    def __init__(self):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def call(self, fn):
        """`fn()` run on the spawner thread; its value, or its exception raised here."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="session-spawner", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._calls.put((fn, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            fn, done = self._calls.get()
            try:
                done.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_spawner = _Spawner()


class ProcessSession:
    """One held sandbox; `run(request)` executes in it, `destroy()` ends it."""

    def __init__(self, driver, request: ExecutionRequest):
        from sandbox import process_driver as pd

        self.driver = driver
        self.exec_id = f"{os.getpid()}-{next(driver._seq)}-{secrets.token_hex(4)}"
        self.exec_dir = driver.base_dir / self.exec_id
        self.workdir = self.exec_dir / "data"
        self.cg = pd._Cgroups(driver.cgroup_root, self.exec_id)
        self.uid = driver._acquire_uid()
        self.mounted = False
        self.proc = None
        self.proxy = None
        self.fds: list[int] = []
        self.seen: dict = {}
        self.alive = False
        self.memory_mib = int(request.memory_mib)
        try:
            self._start(request, pd)
        except BaseException:
            self.destroy()
            raise

    def _start(self, request, pd) -> None:
        d, uid = self.driver, self.uid
        layer = pd.layers.layer_for(request, d.config)
        self.layer = layer
        self.exec_dir.mkdir(mode=0o711)
        os.chmod(self.exec_dir, 0o711)
        self.workdir.mkdir(mode=0o700)
        for name, text in (
            ("passwd", f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                       f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n"),
            ("group", f"root:x:0:\nsandbox:x:{uid}:\n"),
        ):
            (self.exec_dir / name).write_text(text)
            os.chmod(self.exec_dir / name, 0o644)
        mem_bytes = self.memory_mib * 1024 * 1024
        try:
            pd._mount_tmpfs(self.workdir, mem_bytes // 2 + 1024 * 1024, uid, uid)
            self.mounted = True
        except OSError as exc:
            raise pd.SandboxUnavailable(f"cannot mount the working directory tmpfs: {exc}") from None
        try:
            self.cg.create(d.pids_max, mem_bytes)
        except OSError as exc:
            raise pd.SandboxUnavailable(f"cannot create cgroups for {self.exec_id}: {exc}") from None
        self.proxy = pd.EgressProxy(request.allowed_hosts, pd.private_networks_from_env(),
                                    egress_limits_from_env())
        self.proxy.serve_unix(str(self.exec_dir / pd.EGRESS_SOCKET_NAME))
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.fds += [self.in_w, self.out_r, self.err_r, self.res_r]
        spec = {"workdir": WORKDIR, "result_fd": res_w, "egress_socket": pd.GUEST_EGRESS_SOCKET,
                "egress_listen": list(pd.egress_forwarder.DEFAULT_LISTEN)}
        cmd = [
            "/bin/sh", "-c", pd._WRAPPER, "stepwell-sandbox",
            str(self.cg.pids / "cgroup.procs"), str(self.cg.memory / "cgroup.procs"),
            str(self.cg.freezer / "cgroup.procs") if self.cg.freezer else "",
            str(self.cg.cpuacct / "cgroup.procs") if self.cg.cpuacct else "",
            d._setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--",
            *d._bwrap_args(request, self.workdir, mem_bytes // 4, self.exec_dir, layer),
            "--", pd.SYSTEM_PYTHON, pd.GUEST_HARNESS, "--session", json.dumps(spec),
        ]
        try:
            self.proc = _spawner.call(lambda: subprocess.Popen(
                cmd, stdin=in_r, stdout=out_w, stderr=err_w, pass_fds=(res_w,), close_fds=True,
                env=d._host_env(), cwd="/", start_new_session=True))
        finally:
            for fd in (in_r, out_w, err_w, res_w):
                os.close(fd)
        for fd in (self.out_r, self.err_r, self.res_r):
            os.set_blocking(fd, False)
        self.alive = True

    # ------------------------------------------------------------------ one request
    def run(self, request: ExecutionRequest, execution_id: str | None, on_output=None) -> ExecutionResult:
        d = self.driver
        t0 = time.monotonic()
        meta = {"driver": d.name, "execution_id": self.exec_id, "uid": self.uid,
                "cgroup": f"{self.cg.pids.parent.name}/{self.exec_id}", "isolation": "session",
                "runtime_id": self.layer.runtime_id if self.layer else None}
        inputs = {}
        for f in request.files:
            p = self.workdir / f.name
            p.write_bytes(f.content)
            os.chown(p, self.uid, self.uid)
            os.chmod(p, 0o644)
            inputs[f.name] = f.content
        self.proxy.allowed_hosts = tuple(request.allowed_hosts)
        n_egress = len(self.proxy.records())
        oom0 = self.cg.memory_stats().get("oom_kills", 0)
        cpu0 = self.cg.cpu_seconds()
        msg = {"code": request.code, "inputs": request.inputs, "env": request.env}
        bufs = {self.out_r: bytearray(), self.err_r: bytearray(), self.res_r: bytearray()}
        totals = {fd: 0 for fd in bufs}
        caps = {self.out_r: int(request.stdout_cap), self.err_r: int(request.stderr_cap),
                self.res_r: d_result_cap()}
        live = None
        if on_output is not None:
            live = streaming.OutputStream(on_output, request.stdout_cap, request.stderr_cap)
        names = {self.out_r: "out", self.err_r: "err"}
        stop = []
        if not d._cancels.register(execution_id, lambda: stop.append(1) or self.cg.kill_all()):
            stop.append(1)
        deadline = t0 + float(request.timeout_s)
        timed_out = died = False
        answer = None
        try:
            data = json.dumps(msg).encode()
            try:
                os.write(self.in_w, LEN.pack(len(data)) + data) if not stop else None
            except OSError:
                died = True
            sel = selectors.DefaultSelector()
            for fd in bufs:
                sel.register(fd, selectors.EVENT_READ)
            try:
                while not died and not stop and answer is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        break
                    if live is not None:
                        live.tick()
                        left = min(left, live.interval)
                    for key, _ in sel.select(left):
                        if not self._read(key.fd, bufs, totals, caps, live, names):
                            sel.unregister(key.fd)
                            if key.fd == self.res_r:
                                died = True
                    answer = _answer(bufs[self.res_r])
                for fd in (self.out_r, self.err_r):   # what the code printed before answering
                    while self._read(fd, bufs, totals, caps, live, names) is True:
                        pass
                if live is not None:
                    live.flush()
            finally:
                sel.close()
        finally:
            d._cancels.unregister(execution_id)
        stats = self.cg.memory_stats()
        oom = stats.get("oom_kills", 0) > oom0
        if stop:
            status, code, message = Status.KILLED, None, cancel.MESSAGE
        elif timed_out:
            status, code, message = (Status.TIMEOUT, None, f"time limit of {request.timeout_s:g} s "
                                     "exceeded; the session's sandbox was destroyed")
        elif answer is not None:
            code = int(answer.get("exit_code", 1))
            st, message = outcome.exited(code, memory_mib=request.memory_mib)
            status = Status(st)
        else:
            died = True
            code = None
            if oom:
                st, message = outcome.killed(9, oom=True, memory_mib=request.memory_mib)
                status = Status(st)
            else:
                status = Status.FAILED
                message = "the session's process ended, its state is gone"
        if status not in (Status.SUCCEEDED, Status.FAILED) or died:
            self.alive = False
        files: tuple[OutputFile, ...] = ()
        if self.alive:
            files = self._collect(request, inputs)
        cpu1 = self.cg.cpu_seconds()
        if cpu0 is not None and cpu1 is not None:
            meta["cpu_s"] = round(cpu1 - cpu0, 3)
        meta["session_alive"] = self.alive
        return limits.enforce(ExecutionResult(
            status=status, exit_code=code,
            stdout=bytes(bufs[self.out_r]).decode("utf-8", "replace"),
            stderr=bytes(bufs[self.err_r]).decode("utf-8", "replace"),
            stdout_truncated=totals[self.out_r] > caps[self.out_r],
            stderr_truncated=totals[self.err_r] > caps[self.err_r],
            result=outcome.result_value(answer.get("payload"), "") if answer else None,
            files=files, duration_ms=(time.monotonic() - t0) * 1000, message=message,
            metadata=meta, egress=self.proxy.records()[n_egress:],
        ))

    @staticmethod
    def _read(fd, bufs, totals, caps, live, names):
        """One read: True (data), False (end of pipe), None (nothing now)."""
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            return False
        totals[fd] += len(data)
        if live is not None and fd in names:
            live.feed(names[fd], data)
        room = caps[fd] - len(bufs[fd])
        if room > 0:
            bufs[fd] += data[:room]
        return True

    def _collect(self, request: ExecutionRequest, inputs: dict) -> tuple[OutputFile, ...]:
        if self.cg.freezer is None or not self.cg._freeze("FROZEN"):
            return ()
        try:
            found = outcome.collect_files(str(self.workdir), int(request.file_cap), inputs,
                                          seen=self.seen)
        except (OSError, RecursionError):
            found = []
        finally:
            self.cg._freeze("THAWED")
        return tuple(OutputFile(name=n, size=s, content=c, truncated=c is None) for n, s, c in found)

    # ------------------------------------------------------------------ the end
    def destroy(self) -> None:
        from sandbox import process_driver as pd

        self.alive = False
        if self.proxy is not None:
            self.proxy.close()
        if self.proc is not None:
            self.cg.kill_all()
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        try:
            self.cg.remove()
        except OSError:
            pass
        if self.mounted:
            try:
                pd._umount(self.workdir)
            except OSError:
                pass
            self.mounted = False
        shutil.rmtree(self.exec_dir, ignore_errors=True)
        self.driver._release_uid(self.uid)


def d_result_cap() -> int:
    from sandbox.process_driver import RESULT_READ_CAP

    return RESULT_READ_CAP


def _answer(buf: bytearray) -> dict | None:
    """The harness's answer once it is complete in `buf`."""
    if len(buf) < LEN.size:
        return None
    (n,) = LEN.unpack_from(buf)
    if len(buf) < LEN.size + n:
        return None
    try:
        out = json.loads(bytes(buf[LEN.size:LEN.size + n]))
    except ValueError:
        return {"exit_code": 1, "payload": None}
    return out if isinstance(out, dict) else {"exit_code": 1, "payload": None}
