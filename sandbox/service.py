"""The per-host sandbox service: one process that owns one driver (and so the warm pool).

The driver is the configured one, never another: when it cannot start (libvirtd gone, no
image), the service still listens, its status says `available: false` with the reason, every
execution ends with status `error` and that reason, and it tries to start the driver again at
most every DRIVER_RETRY_S.

Listens on a unix socket (mode 0660, stale socket removed at start-up), one thread per
connection, protocol described in `sandbox.client`; an execution whose client closes its
connection is cancelled (sandbox/hangup.py). Stopped by SIGTERM/SIGINT (or `stop()`):
stops accepting, lets executions in flight finish for a grace period, then closes the driver.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import stat
import threading
import time
import uuid
from pathlib import Path

from sandbox.cancel import check_id
from sandbox.client import MAX_REQUEST_FRAME, recv_frame, send_frame, unavailable_result
from sandbox.contract import (
    MAX_REUSE_KEY,
    ContractError,
    ExecutionRequest,
    SandboxError,
    SandboxUnavailable,
)
from sandbox.hangup import cancel_on_hangup
from sandbox.protocol import ChannelClosed, FrameDecoder, ProtocolError

log = logging.getLogger("sandbox.service")

SOCKET_MODE = 0o660
SHUTDOWN_GRACE_S = 30.0
DRIVER_RETRY_S = 10.0


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        svc = self.server.service
        sock: socket.socket = self.request
        decoder = FrameDecoder(MAX_REQUEST_FRAME)
        pending: list = []
        svc._conn_delta(+1)
        try:
            while not svc.stopping.is_set():
                try:
                    msg = recv_frame(sock, decoder, pending, None)
                except ChannelClosed:
                    return
                except ProtocolError as exc:
                    self._reply(sock, {"ok": False, "kind": "invalid", "error": f"bad frame: {exc}"})
                    return
                except OSError:
                    return
                svc._inflight_delta(+1)
                try:
                    reply = svc.dispatch(msg, emit=lambda m: self._reply(sock, m), peer=sock)
                    if not self._reply(sock, reply):
                        return
                finally:
                    svc._inflight_delta(-1)
        finally:
            svc._conn_delta(-1)

    @staticmethod
    def _reply(sock: socket.socket, reply: dict) -> bool:
        try:
            try:
                send_frame(sock, reply)
            except (ProtocolError, ValueError, TypeError) as exc:  # too large, or not strict JSON
                send_frame(sock, {"ok": False, "kind": "internal", "error": f"answer not sendable: {exc}"})
            return True
        except OSError:
            return False


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128
    service: "SandboxService"


class SandboxService:
    """Serves one started driver on a unix socket."""

    def __init__(self, driver, socket_path: str | os.PathLike, unavailable: str | None = None):
        """`driver` started, or, with `unavailable` (why it could not start), not started."""
        self.driver = driver
        self.unavailable = unavailable
        self._driver_tried = time.monotonic()
        self._driver_lock = threading.Lock()
        self.socket_path = Path(socket_path)
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections = 0
        self._active = 0      # executions running
        self._inflight = 0    # requests being handled (answer not yet sent)
        self._served = 0
        self._started_at = time.time()

    # ------------------------------------------------------------------ socket lifecycle
    def _prepare_socket_path(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise SandboxError(f"{self.socket_path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            os.unlink(self.socket_path)  # stale: nobody listens any more
            log.info("removed stale socket %s", self.socket_path)
            return
        finally:
            probe.close()
        raise SandboxError(f"another sandbox service is already listening on {self.socket_path}")

    def start(self) -> "SandboxService":
        """Bind and serve in a background thread (the driver must already be started)."""
        self._prepare_socket_path()
        old_umask = os.umask(0o117)
        try:
            server = _Server(str(self.socket_path), _Handler, bind_and_activate=True)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, SOCKET_MODE)
        server.service = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sandbox-service", daemon=True)
        self._thread.start()
        log.info("sandbox service (%s driver) listening on %s", self.driver.name, self.socket_path)
        return self

    def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting, wait for executions in flight (up to `grace`), close the driver."""
        if self.stopping.is_set() and self._server is None:
            return
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        try:
            if self.socket_path.is_socket():
                os.unlink(self.socket_path)
        except OSError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if self._inflight == 0:
                    break
            time.sleep(0.05)
        try:
            self.driver.close()
        except Exception:  # noqa: BLE001
            log.exception("driver.close() failed")

    def serve_until_signalled(self) -> None:
        """Block until SIGTERM or SIGINT (main thread only), then stop gracefully."""
        got = threading.Event()

        def _on_signal(signum, _frame):
            log.info("received %s, shutting down", signal.Signals(signum).name)
            got.set()

        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not got.is_set() and not self.stopping.is_set():
                got.wait(0.5)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.stop()

    # ------------------------------------------------------------------ requests
    def _inflight_delta(self, d: int) -> None:
        with self._lock:
            self._inflight += d

    def _conn_delta(self, d: int) -> None:
        with self._lock:
            self._connections += d

    def driver_available(self) -> bool:
        """True once the driver started; while it has not, start it again (at most every
        DRIVER_RETRY_S)."""
        if self.unavailable is None:
            return True
        with self._driver_lock:
            if self.unavailable is not None and time.monotonic() - self._driver_tried >= DRIVER_RETRY_S:
                self._driver_tried = time.monotonic()
                try:
                    self.driver.start()
                except SandboxUnavailable as exc:
                    self.unavailable = str(exc)
                else:
                    log.warning("the %s driver is available now", self.driver.name)
                    self.unavailable = None
        return self.unavailable is None

    def status(self) -> dict:
        if self.driver_available():
            st = dict(self.driver.status())
            st["available"] = True
            sessions = st.get("sessions")
            st["sessions_held"] = sessions.get("held", 0) if isinstance(sessions, dict) else 0
        else:
            st = {"driver": self.driver.name, "available": False, "error": self.unavailable,
                  "ready": 0, "busy": 0, "refilling": 0, "size": 0, "sessions_held": 0}
        with self._lock:
            st["service"] = {
                "pid": os.getpid(), "socket": str(self.socket_path), "connections": self._connections,
                "active": self._active, "served": self._served,
                "uptime_s": round(time.time() - self._started_at, 3),
            }
        return st

    def dispatch(self, msg: dict, emit=None, peer: socket.socket | None = None) -> dict:
        """The answer to one request; `emit(frame)` sends the live output frames of an execute
        with "stream": true before it (see sandbox.client). An execution whose `peer` closes the
        connection before its answer is cancelled (sandbox/hangup.py)."""
        op = msg.get("op")
        try:
            if op == "ping":
                return {"ok": True}
            if op == "status":
                return {"ok": True, "status": self.status()}
            if op == "execute":
                if self.stopping.is_set():
                    return {"ok": False, "kind": "unavailable", "error": "the sandbox service is shutting down"}
                request = ExecutionRequest.from_dict(msg.get("request"))
                execution_id = check_id(msg.get("execution_id"))
                if not self.driver_available():
                    return {"ok": True, "result": unavailable_result(self.driver.name, self.unavailable).to_dict()}
                with self._lock:
                    self._active += 1
                kw = {}
                if msg.get("stream") is True and emit is not None:
                    kw["on_output"] = lambda out, err: emit(
                        {"ok": True, "output": {"stdout": out, "stderr": err}})
                if peer is not None and execution_id is None:
                    execution_id = f"svc-{os.getpid()}-{uuid.uuid4().hex}"
                try:
                    with cancel_on_hangup(peer, lambda: self.driver.cancel(execution_id)):
                        result = self.driver.execute(request, execution_id=execution_id, **kw)
                finally:
                    with self._lock:
                        self._active -= 1
                        self._served += 1
                return {"ok": True, "result": result.to_dict()}
            if op == "cancel":  # served while shutting down too: it ends work sooner
                execution_id = check_id(msg.get("execution_id"))
                if execution_id is None:
                    raise ContractError("cancel needs an execution_id")
                return {"ok": True, "cancelled": bool(self.driver.cancel(execution_id))}
            if op == "end_session":  # served while shutting down too: it frees a VM sooner
                key = msg.get("reuse_key")
                if not isinstance(key, str) or not key or len(key) > MAX_REUSE_KEY:
                    raise ContractError(f"end_session needs a reuse_key (a string of 1 to "
                                        f"{MAX_REUSE_KEY} characters)")
                if not self.driver_available():
                    return {"ok": True, "ended": False}
                return {"ok": True, "ended": bool(self.driver.end_session(key))}
            return {"ok": False, "kind": "invalid", "error": f"unknown op {op!r}"}
        except (ContractError, TypeError) as exc:
            return {"ok": False, "kind": "invalid", "error": f"invalid request: {exc}"}
        except SandboxUnavailable as exc:
            return {"ok": False, "kind": "unavailable", "error": str(exc)}
        except SandboxError as exc:
            return {"ok": False, "kind": "internal", "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one bad request must not kill the service
            log.exception("request failed")
            return {"ok": False, "kind": "internal", "error": f"internal error: {exc!r}"}


def run_service(driver_name: str | None = None, pool_size: int | None = None,
                socket_path: str | os.PathLike | None = None) -> None:
    """Build and start the configured driver (never another one), serve until SIGTERM/SIGINT
    (used by `manage.py sandbox_service`)."""
    from sandbox.config import SandboxConfig
    from sandbox.drivers import get_driver

    config = SandboxConfig.from_env()
    driver = get_driver(driver_name, config=config, pool_size=pool_size)
    unavailable = None
    try:
        driver.start()
    except SandboxUnavailable as exc:
        unavailable = str(exc)
        log.error("the %s sandbox driver is unavailable (%s): executions end with status error "
                  "until it starts", driver.name, exc)
    try:
        service = SandboxService(driver, socket_path or config.socket_path, unavailable).start()
    except BaseException:
        driver.close()
        raise
    service.serve_until_signalled()
