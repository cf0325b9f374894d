"""Client of the per-host sandbox service, and `execute()`, the one call most callers need.

Wire protocol over the service's unix socket: frames from `sandbox.protocol` (magic, 4-byte
big-endian length, JSON object). Requests and answers:

    {"op": "execute", "request": {...ExecutionRequest.to_dict()}}
        -> {"ok": true, "result": {...ExecutionResult.to_dict()}}
    {"op": "status"} -> {"ok": true, "status": {"driver": ..., "ready": n, "busy": n, ...}}
    {"op": "ping"}   -> {"ok": true}
    anything wrong   -> {"ok": false, "error": "...", "kind": "invalid" | "unavailable" | "internal"}

A connection may carry several requests one after the other.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from sandbox import limits
from sandbox.config import HostLimits, SandboxConfig
from sandbox.contract import (
    ContractError,
    ExecutionRequest,
    ExecutionResult,
    SandboxError,
    SandboxUnavailable,
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

    def _call(self, message: dict, timeout: float | None) -> dict:
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
                reply = recv_frame(sock, decoder, [], deadline)
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

    def execute(self, request: ExecutionRequest, timeout: float | None = None) -> ExecutionResult:
        if timeout is None:
            timeout = float(request.timeout_s) + EXECUTE_SLACK_S
        reply = self._call({"op": "execute", "request": request.to_dict()}, timeout)
        try:
            return limits.enforce(ExecutionResult.from_dict(reply["result"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SandboxError(f"malformed result from the sandbox service: {exc}") from None

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
                  config: SandboxConfig | None = None) -> ExecutionResult:
    """One execution on a driver built for this call only (libvirt without a warm pool)."""
    from sandbox.drivers import get_driver

    config = config or SandboxConfig.from_env()
    name = driver or config.driver
    drv = get_driver(name, config=config, pool_size=0 if name == "libvirt" else None)
    try:
        try:
            drv.start()
        except SandboxUnavailable as exc:
            if name != "libvirt" or driver or os.environ.get("SANDBOX_DRIVER"):
                raise
            # libvirt is only the default here, not a choice: fall back to the process driver.
            log.warning("libvirt driver unavailable (%s); using the process driver", exc)
            drv.close()
            drv = get_driver("process", config=config)
            drv.start()
        return drv.execute(request)
    finally:
        drv.close()


class Chooser:
    """The one place that decides where executions run: the host's sandbox service when its
    socket answers and runs the wanted driver (it owns the warm pool), else in this process.

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

    def backend(self, driver: str | None = None) -> tuple[str, object]:
        """("service", SandboxClient) or ("local", a started driver, or None without
        keep_local)."""
        config = self.config or SandboxConfig.from_env()
        with self._lock:
            client = SandboxClient(self.socket_path or config.socket_path)
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at > self.recheck_s:
                self._checked_at = now
                self._service_ok = False
                if Path(client.socket_path).exists():
                    try:
                        st = client.status(timeout=self.status_timeout)
                        self._service_ok = driver is None or st.get("driver") == driver
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
        kind, obj = self.backend(driver)
        if kind == "service":
            return f"service:{obj.socket_path}"
        return f"local:{obj.name if obj is not None else driver or (self.config or SandboxConfig.from_env()).driver}"

    def execute(self, request: ExecutionRequest, driver: str | None = None,
                timeout: float | None = None) -> ExecutionResult:
        kind, obj = self.backend(driver)
        if kind == "service":
            return obj.execute(request, timeout=timeout)
        if obj is None:
            return execute_local(request, driver=driver, config=self.config)
        return obj.execute(request)


def execute(request: ExecutionRequest, driver: str | None = None, *, socket_path: str | Path | None = None,
            timeout: float | None = None, config: SandboxConfig | None = None) -> ExecutionResult:
    """Run `request` through the host's sandbox service when its socket answers, else locally.

    With `driver` given, the service is used only if it runs that driver.
    """
    return Chooser(socket_path=socket_path, config=config).execute(request, driver, timeout=timeout)
