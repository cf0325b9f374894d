"""The host's session with one VM: the connection to its guest agent over the virtio-serial
unix socket, and what the host asks of it (hello, one request, the output so far at a timeout,
disarm before a save), and the reading of the agent's result into an ExecutionResult; and the
host end of its egress port during an execution (EgressSession).

Frames are sandbox/protocol.py's; the guest end is sandbox/guest/. The egress port carries
sandbox/egress/mux.py streams from the guest's forwarder (sandbox/guest/egress.py).
"""
from __future__ import annotations

import base64
import dataclasses
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from sandbox import limits, protocol, streaming
from sandbox.config import HostLimits
from sandbox.config import egress_limits_from_env
from sandbox.contract import ExecutionRequest, ExecutionResult, OutputFile, SandboxError, Status
from sandbox.egress import forwarder, mux, private_networks_from_env
from sandbox.egress.proxy import EgressProxy

from .xml import DomainSpec

CONNECT_TIMEOUT_S = 15.0
MAX_EGRESS_STREAMS = 64   # streams open at once per execution (each costs three host threads)


class NotAccepted(SandboxError):
    """The VM went away before it acknowledged the request: the user code never ran."""


def connect_unix(path: str, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """Connect to a VM's channel socket, waiting for QEMU to create it."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise SandboxError(f"cannot connect to the guest channel {path}") from None
            time.sleep(0.005)


class Cancelled(SandboxError):
    """The execution was cancelled while the host waited for the agent's result."""


CANCEL_POLL_S = 0.1


class AgentSession:
    """One connection to a domain's agent over its virtio-serial unix socket."""

    def __init__(self, path: str, timeout: float = CONNECT_TIMEOUT_S):
        s = connect_unix(path, timeout)
        self.sock = s
        # the guest's frames are held to the host's limits (the code holds the channel); the
        # frame cap is the largest allowed, check_frame reads the current limits
        self.chan = protocol.FdChannel(s.fileno(), max_frame=HostLimits.from_env().max_frame_bytes,
                                       check=limits.check_frame)

    def request(self, message: dict, deadline: float) -> dict:
        self.chan.send(message)
        return self.answer(deadline)

    def answer(self, deadline: float) -> dict:
        """The agent's next answer, past any late "partial" one: the host asks for partial output
        while code runs, and the answer to the last ask may cross the result on the wire and
        arrive after it, in front of the next request's answer (a VM that serves several
        executions, `workflow` isolation or a session, would otherwise read it as that answer)."""
        while True:
            reply = self.chan.recv(deadline)
            if reply.get("op") != "partial":
                return reply

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class VM:
    """One single-use domain and the host's session with its agent."""
    name: str
    spec: DomainSpec
    session: AgentSession | None
    origin: str                      # "restore" or "boot"
    identity: object | None = None   # pool.Identity for restored domains
    store: object | None = None      # the pool.SaveStore the identity belongs to
    layer: object | None = None      # sandbox.layers.Layer attached as vdb (None: no packages)
    started: float = field(default_factory=time.monotonic)
    timings: dict = field(default_factory=dict)
    broken: bool = False
    accepted: bool = False          # the agent acknowledged the current request
    seeded: bool = False            # host entropy reached this VM after its boot or restore
    egress_port: "EgressSession | None" = None   # the egress port, connected with the agent

    def connect(self, wait_s: float) -> dict:
        """Connect to the agent and arm it (it powers the VM off when the host end goes away);
        its hello. Raises protocol.ProtocolError when it does not answer in time. The egress
        port is connected here too, off the request path: by the time code runs, the guest
        has long seen its host end connected."""
        self.session = AgentSession(self.spec.channel_path)
        if self.spec.egress_path:
            self.egress_port = EgressSession(connect_unix(self.spec.egress_path))
        return self.session.request({"op": "hello", "arm": True, "wait_s": wait_s},
                                    time.monotonic() + wait_s)

    def egress(self, request: ExecutionRequest) -> "EgressSession | None":
        """Serve the guest's egress streams for this execution (None: the VM has no port)."""
        port, self.egress_port = self.egress_port, None
        if port is not None:
            port.begin(getattr(request, "allowed_hosts", None) or ())
        return port

    def close_egress(self) -> None:
        port, self.egress_port = self.egress_port, None
        if port is not None:
            port.close()

    def exchange(self, msg_id: int, request: dict, deadline: float, warmup: bool = False,
                 cancel: "threading.Event | None" = None) -> dict:
        """One request to the agent. Host entropy goes with every warm-up and with the first
        request of a VM that had none: each restored clone reseeds its kernel CRNG and Python's
        generators after the restore, before its one real request. Warm-ups also ask the agent
        to empty /mnt/data afterwards. With `cancel`, the wait for the result ends (Cancelled)
        within CANCEL_POLL_S of it being set; the session stays usable (partial_output). With
        a live output callback attached to this thread (sandbox.streaming.attached), the host
        asks the agent for its output so far every PARTIAL_INTERVAL_S while the code runs."""
        self.accepted = False
        msg = {"op": "exec", "id": msg_id, "request": request}
        if warmup or not self.seeded:
            msg["entropy"] = base64.b64encode(os.urandom(64)).decode()
        if warmup:
            msg["scrub"] = True
        reply = self.session.request(msg, deadline)
        if reply.get("op") == "accepted":
            self.accepted = True
            self.seeded = True
            on_output = streaming.current() if not warmup else None
            live = None
            if on_output is not None:
                live = streaming.OutputStream(on_output, request.get("stdout_cap", 1 << 20),
                                              request.get("stderr_cap", 1 << 20))
            reply = self._result(deadline, cancel, live)
        if reply.get("op") != "result":
            raise SandboxError(f"unexpected reply from the guest agent: {reply.get('op')!r}")
        return reply

    def _result(self, deadline: float, cancel, live: "streaming.OutputStream | None" = None) -> dict:
        if cancel is None and live is None:
            return self.session.answer(deadline)
        asked = 0.0
        while True:   # a frame cut by a short wait stays buffered in the channel's decoder
            if cancel is not None and cancel.is_set():
                raise Cancelled(self.name)
            now = time.monotonic()
            if live is not None and now - asked >= streaming.PARTIAL_INTERVAL_S:
                self.session.chan.send({"op": "partial"})   # answered while the code runs
                asked = now
            try:
                reply = self.session.chan.recv(min(deadline, now + CANCEL_POLL_S))
            except protocol.FrameTimeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            if reply.get("op") == "partial":
                if live is not None:
                    live.feed_total(reply.get("stdout", ""), reply.get("stderr", ""))
                    live.flush()
                continue
            return reply

    def partial_output(self, wait_s: float = 0.5) -> dict:
        """Output captured so far by the agent (best effort, bounded wait)."""
        try:
            self.session.chan.send({"op": "partial"})
            end = time.monotonic() + wait_s
            while True:
                m = self.session.chan.recv(end)
                if m.get("op") == "partial":
                    return m
        except (protocol.ProtocolError, OSError):
            return {}

    def disarm(self) -> None:
        """Before a save: the agent stops powering off on disconnect and drops its caches;
        the session is closed (a saved VM must have no host end)."""
        self.session.request({"op": "disarm", "drop_caches": True}, time.monotonic() + 30)
        self.session.close()
        self.session = None
        self.close_egress()


class EgressSession:
    """The host end of one VM's egress port. Its reading thread starts when the VM is connected
    (off the request path: under load a thread start can wait a scheduler slice); begin() gives
    it the execution's EgressProxy (policy from the request's allowed_hosts and
    STEPWELL_EGRESS_PRIVATE_NETWORKS, limits from STEPWELL_EGRESS_*). Each stream the guest's
    forwarder opens is then one client connection of that proxy, joined to it by a socketpair;
    bytes move both ways with the mux's flow control (a stream opened before begin() is reset).
    close() ends everything and returns the records for ExecutionResult.egress."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.proxy: EgressProxy | None = None
        self.mux = mux.Mux(lambda: sock.recv(1 << 18), sock.sendall, on_open=self._on_open,
                           max_streams=MAX_EGRESS_STREAMS)
        threading.Thread(target=self.mux.run, daemon=True, name="egress-mux").start()

    def begin(self, allowed_hosts) -> None:
        self.proxy = EgressProxy(allowed_hosts, private_networks_from_env(), egress_limits_from_env())

    def _on_open(self, stream: mux.Stream) -> None:
        proxy = self.proxy
        if proxy is None or proxy.closed:
            stream.reset()
            return
        ours, proxys = socket.socketpair()
        proxy.handle(proxys)
        threading.Thread(target=forwarder.relay, args=(ours, stream), daemon=True,
                         name="egress-relay").start()

    def close(self) -> list[dict]:
        """End the proxy, every stream and the port (the reading thread then ends by itself)."""
        proxy = self.proxy
        if proxy is not None:
            proxy.close()
        self.mux.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        return proxy.records() if proxy is not None else []


def with_egress(result: ExecutionResult, records: list[dict]) -> ExecutionResult:
    """`result` with its egress records (while the contract has no such field: unchanged)."""
    if "egress" not in {f.name for f in dataclasses.fields(result)}:
        return result
    return dataclasses.replace(result, egress=records)


def cap_text(text: str, cap: int) -> str:
    data = str(text).encode()
    return text if len(data) <= cap else data[:cap].decode("utf-8", "replace")


def result_from_reply(reply: dict, request: ExecutionRequest, duration_ms: float,
                      meta: dict) -> ExecutionResult:
    """The agent's result frame as an ExecutionResult, with the request's caps and the host's
    limits (sandbox/limits.py) applied again (the guest is not trusted to have kept them)."""
    try:
        status = Status(reply.get("status"))
    except ValueError:
        status = Status.ERROR
    stdout = str(reply.get("stdout", ""))
    stderr = str(reply.get("stderr", ""))
    out_trunc = bool(reply.get("stdout_truncated"))
    err_trunc = bool(reply.get("stderr_truncated"))
    if len(stdout.encode()) > request.stdout_cap:
        stdout = stdout.encode()[: request.stdout_cap].decode("utf-8", "replace")
        out_trunc = True
    if len(stderr.encode()) > request.stderr_cap:
        stderr = stderr.encode()[: request.stderr_cap].decode("utf-8", "replace")
        err_trunc = True
    files = []
    listed = reply.get("files")
    for f in listed if isinstance(listed, list) else []:
        try:
            of = OutputFile.from_dict(f)
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        if of.content is not None and len(of.content) > request.file_cap:
            of = OutputFile(name=of.name, size=of.size, content=None, truncated=True)
        files.append(of)
    exit_code = reply.get("exit_code")
    peak = reply.get("peak_memory_bytes")   # told by the guest: kept only within the VM's memory
    if isinstance(peak, int) and not isinstance(peak, bool) and 0 < peak <= request.memory_mib * 1024 * 1024:
        meta = {**meta, "peak_memory_bytes": peak}
    return limits.enforce(ExecutionResult(
        status=status, exit_code=exit_code if isinstance(exit_code, int) else None,
        stdout=stdout, stderr=stderr, stdout_truncated=out_trunc, stderr_truncated=err_trunc,
        result=reply.get("result"), files=tuple(files), duration_ms=duration_ms,
        message=str(reply.get("message", "")), metadata=meta,
    ))
