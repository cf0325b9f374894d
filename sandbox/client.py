"""Client of the per-host sandbox service, and `execute()`, the one call most callers need.

Wire protocol over the service's unix socket: frames from `sandbox.protocol` (magic, 4-byte
big-endian length, JSON object). Requests and answers:

    {"op": "execute", "request": {...ExecutionRequest.to_dict()}, "execution_id": "..." (optional),
     "stream": true (optional)}
        -> {"ok": true, "result": {...ExecutionResult.to_dict()}}
        with "stream": first any number of {"ok": true, "output": {"stdout": "...", "stderr": "..."}},
        the text printed since the previous one while the code runs (sandbox/streaming.py)
    {"op": "cancel", "execution_id": "..."} -> {"ok": true, "cancelled": true | false}
        stops that execution (its result: status killed, sandbox.cancel.MESSAGE); false when it
        is not running (a cancel that comes first is remembered: the execution then never runs)
    {"op": "end_session", "reuse_key": "..."} -> {"ok": true, "ended": true | false}
        destroys the sandbox held for that stateful session (ExecutionRequest isolation
        "session"; after the execution in flight, if any); false when there is no such session
    {"op": "status"} -> {"ok": true, "status": {"driver": ..., "ready": n, "busy": n,
        "sessions_held": n, ...}}
    {"op": "ping"}   -> {"ok": true}
    anything wrong   -> {"ok": false, "error": "...", "kind": "invalid" | "unavailable" | "internal"}

A connection may carry several requests one after the other.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

from sandbox import cancel, limits
from sandbox.config import HostLimits, SandboxConfig
from sandbox.contract import (
    ContractError,
    ExecutionRequest,
    ExecutionResult,
    SandboxError,
    SandboxUnavailable,
    Status,
)
from sandbox.protocol import MAX_FRAME, ChannelClosed, FrameDecoder, FrameTimeout, ProtocolError, encode

log = logging.getLogger("sandbox.client")

# Requests carry at most 64 MiB of input files (base64: ~86 MiB) plus code and inputs.
MAX_REQUEST_FRAME = 128 * 1024 * 1024
MAX_RESPONSE_FRAME = MAX_FRAME
# How long past the request's own timeout a client waits (queueing for a slot, boot, collection).
EXECUTE_SLACK_S = 120.0


def send_frame(sock: socket.socket, message: dict) -> None:
    """Send one frame (blocking, honours the socket's timeout)."""
    sock.sendall(encode(message))


def recv_frame(sock: socket.socket, decoder: FrameDecoder, pending: list, deadline: float | None = None) -> dict:
    """Receive one frame. `decoder` and `pending` persist per connection (frames may coalesce)."""
    while not pending:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout("no answer before the deadline")
            sock.settimeout(left)
        else:
            sock.settimeout(None)
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            raise FrameTimeout("no answer before the deadline") from None
        except ConnectionResetError:
            data = b""
        if not data:
            if decoder.pending:
                raise ChannelClosed("peer closed the connection in the middle of a frame")
            raise ChannelClosed("peer closed the connection")
        pending.extend(decoder.feed(data))
    return pending.pop(0)


class SandboxClient:
    """Talks to the sandbox service on `socket_path` (default: SANDBOX_SOCKET / config)."""

    def __init__(self, socket_path: str | Path | None = None, connect_timeout: float = 2.0):
        self.socket_path = str(socket_path or SandboxConfig.from_env().socket_path)
        self.connect_timeout = connect_timeout

    def _call(self, message: dict, timeout: float | None, on_output=None) -> dict:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError, socket.timeout, PermissionError) as exc:
                raise SandboxUnavailable(f"sandbox service not reachable at {self.socket_path}: {exc}") from None
            deadline = None if timeout is None else time.monotonic() + timeout
            sock.settimeout(None if timeout is None else max(timeout, 0.001))
            try:
                send_frame(sock, message)
                host_limits = HostLimits.from_env()
                decoder = FrameDecoder(min(MAX_RESPONSE_FRAME, host_limits.max_frame_bytes),
                                       lambda p: limits.check_frame(p, host_limits))
                pending: list = []
                reply = recv_frame(sock, decoder, pending, deadline)
                while on_output is not None and "output" in reply and "result" not in reply:
                    out = reply.get("output") if isinstance(reply.get("output"), dict) else {}
                    try:
                        on_output(str(out.get("stdout", "")), str(out.get("stderr", "")))
                    except Exception:  # noqa: BLE001 - a listener's fault is not the execution's
                        log.exception("live output callback failed")
                        on_output = None
                    reply = recv_frame(sock, decoder, pending, deadline)
                while "output" in reply and "result" not in reply and reply.get("ok"):
                    reply = recv_frame(sock, decoder, pending, deadline)
            except FrameTimeout:
                raise SandboxError(f"sandbox service did not answer within {timeout:g} s") from None
            except (ProtocolError, OSError) as exc:
                raise SandboxError(f"sandbox service connection failed: {exc}") from None
        finally:
            sock.close()
        if not isinstance(reply, dict) or "ok" not in reply:
            raise SandboxError("malformed answer from the sandbox service")
        if not reply["ok"]:
            error = str(reply.get("error") or "unknown error")
            kind = reply.get("kind")
            if kind == "invalid":
                raise ContractError(error)
            if kind == "unavailable":
                raise SandboxUnavailable(error)
            raise SandboxError(error)
        return reply

    def execute(self, request: ExecutionRequest, timeout: float | None = None,
                execution_id: str | None = None, on_output=None) -> ExecutionResult:
        """`on_output(stdout, stderr)`: called with live output while the code runs."""
        if timeout is None:
            timeout = float(request.timeout_s) + EXECUTE_SLACK_S
        message = {"op": "execute", "request": request.to_dict()}
        if execution_id is not None:
            message["execution_id"] = execution_id
        if on_output is not None:
            message["stream"] = True
        reply = self._call(message, timeout, on_output)
        try:
            return limits.enforce(ExecutionResult.from_dict(reply["result"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SandboxError(f"malformed result from the sandbox service: {exc}") from None

    def cancel(self, execution_id: str, timeout: float = 5.0) -> bool:
        """Stop the execution started with `execution_id`; False when it is not running."""
        return bool(self._call({"op": "cancel", "execution_id": execution_id}, timeout).get("cancelled"))

    def end_session(self, key: str, timeout: float = 5.0) -> bool:
        """Destroy the sandbox held for stateful session `key`; False when there is none."""
        return bool(self._call({"op": "end_session", "reuse_key": key}, timeout).get("ended"))

    def status(self, timeout: float = 5.0) -> dict:
        return self._call({"op": "status"}, timeout)["status"]

    def ping(self, timeout: float = 2.0) -> bool:
        return bool(self._call({"op": "ping"}, timeout)["ok"])

    def available(self, timeout: float = 2.0) -> bool:
        """True when a service answers on the socket."""
        try:
            return self.ping(timeout)
        except SandboxError:
            return False


def execute_local(request: ExecutionRequest, driver: str | None = None,
                  config: SandboxConfig | None = None, on_output=None) -> ExecutionResult:
    """One execution on a driver built for this call only (libvirt without a warm pool)."""
    from sandbox.drivers import get_driver

    config = config or SandboxConfig.from_env()
    name = driver or config.driver
    drv = get_driver(name, config=config, pool_size=0 if name == "libvirt" else None)
    try:
        drv.start()   # SandboxUnavailable when it cannot: never another driver instead
        return drv.execute(request, **({"on_output": on_output} if on_output is not None else {}))
    finally:
        drv.close()


def unavailable_result(driver: str, reason) -> ExecutionResult:
    """The result of an execution that could not run because the configured driver is down."""
    from sandbox.contract import Status

    return ExecutionResult(status=Status.ERROR, metadata={"driver": driver},
                           message=f"the configured sandbox driver ({driver}) is unavailable: {reason}; "
                                   "nothing ran (there is no fallback to another driver)")


class Chooser:
    """The one place that decides where executions run: the host's sandbox service when its
    socket answers and runs the wanted driver (it owns the warm pool), else in this process.
    The wanted driver is the one asked for, else the configured one (SANDBOX_DRIVER); it is
    never replaced by another: when it is unavailable, executions end with status error.

    `recheck_s`: how long an answer about the service is trusted (0: ask on every call).
    `keep_local`: build and start one local driver on first need and keep it (a worker
    process); otherwise every local execution gets a driver of its own (execute_local: a CLI).
    """

    def __init__(self, *, recheck_s: float = 0.0, keep_local: bool = False,
                 status_timeout: float = 2.0, socket_path: str | Path | None = None,
                 config: SandboxConfig | None = None):
        self.recheck_s = recheck_s
        self.keep_local = keep_local
        self.status_timeout = status_timeout
        self.socket_path = socket_path
        self.config = config
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._service_ok = False
        self._local = None
        self._where: dict[str, object] = {}     # execution id -> the client or driver running it
        self._early: dict[str, float] = {}      # ids cancelled before they were started here

    def backend(self, driver: str | None = None) -> tuple[str, object]:
        """("service", SandboxClient) or ("local", a started driver, or None without
        keep_local)."""
        config = self.config or SandboxConfig.from_env()
        driver = driver or config.driver
        with self._lock:
            client = SandboxClient(self.socket_path or config.socket_path)
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at > self.recheck_s:
                self._checked_at = now
                self._service_ok = False
                if Path(client.socket_path).exists():
                    try:
                        st = client.status(timeout=self.status_timeout)
                        self._service_ok = st.get("driver") == driver
                    except SandboxError:
                        pass
            if self._service_ok:
                return "service", client
            if not self.keep_local:
                return "local", None
            if self._local is None:
                from sandbox.drivers import get_driver

                drv = get_driver(driver, config=config)
                drv.start()
                self._local = drv
            return "local", self._local

    def describe(self, driver: str | None = None) -> str:
        try:
            kind, obj = self.backend(driver)
        except SandboxUnavailable:
            return f"unavailable:{driver or (self.config or SandboxConfig.from_env()).driver}"
        if kind == "service":
            return f"service:{obj.socket_path}"
        return f"local:{obj.name if obj is not None else driver or (self.config or SandboxConfig.from_env()).driver}"

    def run(self, request: ExecutionRequest, driver: str | None = None,
            timeout: float | None = None, execution_id: str | None = None,
            on_output=None) -> ExecutionResult:
        """The execution on the wanted driver; SandboxUnavailable when that driver is. With
        `execution_id`, `cancel(execution_id)` stops it; `on_output(stdout, stderr)` gets the
        live output (sandbox/streaming.py)."""
        if execution_id is not None:
            with self._lock:
                if self._early.pop(execution_id, None) is not None:
                    return ExecutionResult(status=Status.KILLED, message=cancel.MESSAGE)
        kind, obj = self.backend(driver)
        if execution_id is None:
            return self._run_on(kind, obj, request, driver, timeout, None, on_output)
        with self._lock:
            self._where[execution_id] = obj
        try:
            return self._run_on(kind, obj, request, driver, timeout, execution_id, on_output)
        finally:
            with self._lock:
                self._where.pop(execution_id, None)

    def _run_on(self, kind, obj, request, driver, timeout, execution_id, on_output=None) -> ExecutionResult:
        if kind == "service":
            return obj.execute(request, timeout=timeout, execution_id=execution_id, on_output=on_output)
        if obj is None:
            return execute_local(request, driver=driver, config=self.config, on_output=on_output)
        kw = {"on_output": on_output} if on_output is not None else {}
        return obj.execute(request, execution_id=execution_id, **kw)

    def cancel(self, execution_id: str) -> bool:
        """Stop an execution this chooser started with `execution_id`; False when it is not
        running (one not started yet never runs)."""
        with self._lock:
            obj = self._where.get(execution_id)
            if obj is None:
                now = time.monotonic()
                self._early = {k: t for k, t in self._early.items() if now - t < cancel.REMEMBER_S}
                self._early[execution_id] = now
                return False
        return bool(obj.cancel(execution_id))

    def end_session(self, key: str, driver: str | None = None) -> bool:
        """Destroy the sandbox held for stateful session `key` where sessions live: the
        service, else this chooser's kept local driver; False when there is no such session."""
        kind, obj = self.backend(driver)
        if obj is None:
            return False   # a driver per execution (no keep_local) holds no session
        return bool(obj.end_session(key))

    def execute(self, request: ExecutionRequest, driver: str | None = None,
                timeout: float | None = None, execution_id: str | None = None,
                on_output=None) -> ExecutionResult:
        """run(), with an unavailable driver as a result with status error (for the engine)."""
        driver = driver or (self.config or SandboxConfig.from_env()).driver
        try:
            return self.run(request, driver, timeout, execution_id, on_output)
        except SandboxUnavailable as exc:
            log.error("the %s sandbox driver is unavailable: %s", driver, exc)
            return unavailable_result(driver, exc)


def execute(request: ExecutionRequest, driver: str | None = None, *, socket_path: str | Path | None = None,
            timeout: float | None = None, config: SandboxConfig | None = None) -> ExecutionResult:
    """Run `request` through the host's sandbox service when its socket answers, else locally.

    The service is used only if it runs the wanted driver (`driver`, else SANDBOX_DRIVER).
    Raises SandboxUnavailable when that driver is unavailable (never another driver instead).
    """
    return Chooser(socket_path=socket_path, config=config).run(request, driver, timeout=timeout)


def health(socket_path: str | Path | None = None, config: SandboxConfig | None = None,
           timeout: float = 1.0) -> dict:
    """What a health check may say about this host's sandbox: the configured driver, whether
    the sandbox service answers, whether it runs that driver and it is available, and its pool
    counts. Nothing else (no paths, pids, errors or image ids)."""
    config = config or SandboxConfig.from_env()
    out = {"driver": config.driver, "service": False, "available": False,
           "pool": {"size": 0, "ready": 0, "busy": 0}}
    try:
        st = SandboxClient(socket_path or config.socket_path).status(timeout=timeout)
    except SandboxError:
        return out
    out["service"] = True
    out["service_driver"] = str(st.get("driver"))
    out["available"] = st.get("driver") == config.driver and st.get("available", True) is True
    for k in ("size", "ready", "busy"):
        v = st.get(k)
        out["pool"][k] = v if isinstance(v, int) and not isinstance(v, bool) else 0
    return out
