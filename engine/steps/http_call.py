"""HTTP call: only to hosts on the workflow's `settings.allowed_hosts`, through the egress policy.

Every hop (the first request and each redirect, followed here, at most MAX_REDIRECTS) is decided
by `sandbox.egress.decide`: the name must be listed, it is resolved once, every address it
resolves to is checked, and the connection goes to a checked address while the Host header and
the TLS server name (and certificate check) stay the URL's host.

One call has one deadline (`timeout_s`, capped by STEPWELL_MAX_HTTP_TIMEOUT_S) for everything:
connecting, every redirect, the headers and the whole body. A watchdog shuts the connection's
socket down when the deadline passes or the run is cancelled, so a server that trickles bytes
cannot hold the step past it, and cancel stops the call within a fraction of a second.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from engine.status import Status
from engine.steps import Outcome
from sandbox.egress import Decision, decide, open_connection, parse_networks

MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


class HostNotAllowed(Exception):
    pass


class Watchdog:
    """Shuts the call's current socket down once the deadline passes or `cancel` is set.

    `reason` is "deadline" or "cancelled" when it fired before `stop()`, else "".
    """

    POLL_S = 0.05

    def __init__(self, deadline: float, cancel: threading.Event | None):
        self.deadline, self.cancel = deadline, cancel
        self.reason = ""
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._watch, name="http-call-watchdog", daemon=True)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def left(self) -> float:
        """Seconds until the deadline (a small positive number once it passed)."""
        return max(self.deadline - time.monotonic(), 0.001)

    def attach(self, sock: socket.socket) -> None:
        """Watch `sock` (through a duplicate: shutting that down ends the shared connection)."""
        with self._lock:
            self._release()
            self._sock = sock.dup()
            if self.reason:
                self._shut()

    def stop(self) -> None:
        with self._lock:   # the thread sees it at its next tick and ends
            self._stopped.set()
            self._release()

    def _watch(self) -> None:
        while not self._stopped.wait(self.POLL_S):
            if self.cancel is not None and self.cancel.is_set():
                reason = "cancelled"
            elif time.monotonic() >= self.deadline:
                reason = "deadline"
            else:
                continue
            with self._lock:
                if self._stopped.is_set():
                    return
                self.reason = reason
                self._shut()
            return

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class CheckedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address the egress policy checked, never to a new lookup."""

    def __init__(self, decision: Decision, watchdog: Watchdog, tls: ssl.SSLContext | None):
        super().__init__(decision.host, decision.port, timeout=watchdog.left())
        self.decision, self.tls, self.watchdog = decision, tls, watchdog
        self.default_port = 443 if tls else 80   # the Host header omits the scheme's default port

    def connect(self):
        sock = open_connection(self.decision, self.watchdog.left())
        self.watchdog.attach(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host) if self.tls else sock


def _private_networks():
    value = settings.STEPWELL_EGRESS_PRIVATE_NETWORKS
    return parse_networks(value) if isinstance(value, str) else tuple(value)


def _decision(url: str, allowed: list[str]) -> tuple[Decision, str]:
    """The policy's decision for `url` and the request target (path and query).

    :raises HostNotAllowed: not http(s), not listed, or a refused address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise HostNotAllowed(f"only http and https URLs may be called, not {parts.scheme or 'no scheme'!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise HostNotAllowed(f"{url!r} has an invalid port") from None
    decision = decide(allowed, parts.hostname or "", port, _private_networks())
    if not decision.allowed:
        hint = "" if "not allowed by this workflow" not in decision.reason else (
            f" (allowed hosts: {', '.join(allowed) if allowed else 'none'}; add it under "
            "settings.allowed_hosts; without a port only 80 and 443 match)")
        raise HostNotAllowed(decision.reason + hint)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return decision, target


def _fetch(first: tuple[Decision, str], method: str, url: str, headers: dict, data: bytes | None,
           watchdog: Watchdog, allowed: list[str], cap: int):
    """(status, headers, body bytes up to cap+1) after following redirects, each hop checked.

    `first` is the decision already made for `url`: the name is not resolved a second time.
    """
    tls = ssl.create_default_context()
    for hop in range(MAX_REDIRECTS + 1):
        decision, target = first if hop == 0 else _decision(url, allowed)
        conn = CheckedConnection(decision, watchdog, tls if urlsplit(url).scheme == "https" else None)
        try:
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            location = resp.getheader("Location")
            if resp.status in _REDIRECTS and location:
                resp.read(64 * 1024)
                new_url = urljoin(url, location)
                if urlsplit(new_url).hostname != urlsplit(url).hostname:
                    headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
                if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                    method, data = ("HEAD" if method == "HEAD" else "GET"), None
                    headers = {k: v for k, v in headers.items()
                               if k.lower() not in ("content-type", "content-length")}
                url = new_url
                continue
            return resp.status, dict(resp.getheaders()), resp.read(cap + 1)
        finally:
            conn.close()
    raise HostNotAllowed(f"more than {MAX_REDIRECTS} redirects")


def run(ctx, params) -> Outcome:
    allowed = list(ctx.settings.get("allowed_hosts", []))
    method, url = str(params.get("method", "GET")).upper(), params.get("url")
    if not isinstance(url, str):
        return Outcome.failed(f"url must be a string, got {url!r}")
    try:
        first = _decision(url, allowed)
    except HostNotAllowed as exc:
        return Outcome.failed(str(exc))
    # the Host header is always the URL's host: the checked address is reached under that name
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items() if str(k).lower() != "host"}
    body = params.get("body")
    data = None
    if body is not None and method not in ("GET", "HEAD"):
        if isinstance(body, (dict, list, int, float, bool)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = str(body).encode()
    timeout = min(float(params.get("timeout_s") or settings.STEPWELL_MAX_HTTP_TIMEOUT_S),
                  settings.STEPWELL_MAX_HTTP_TIMEOUT_S)
    cap = settings.STEPWELL_MAX_HTTP_RESPONSE_BYTES
    failure = ""
    with Watchdog(time.monotonic() + timeout, ctx.cancel) as watchdog:
        try:
            status, resp_headers, raw = _fetch(first, method, url, headers, data, watchdog, allowed, cap)
        except HostNotAllowed as exc:
            failure = f"redirect refused: {exc}"
        except (http.client.HTTPException, OSError, ValueError) as exc:
            failure = f"{method} {url} failed: {exc}"
        watchdog.stop()
    if watchdog.reason == "cancelled":  # whatever was read is cut short
        return Outcome(status=Status.CANCELLED, ports=(), error=f"{method} {url} was stopped: the run was cancelled")
    if watchdog.reason == "deadline":
        return Outcome(status=Status.TIMED_OUT, ports=(),
                       error=f"{method} {url} did not finish within {timeout:g} s (connecting, redirects "
                             "and the whole response count)")
    if failure:
        return Outcome.failed(failure)
    if len(raw) > cap:
        return Outcome.failed(f"response larger than {cap} bytes")
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    output = {"status_code": status, "headers": resp_headers, "body": parsed}
    if status >= 400:
        return Outcome(status="failed", output=output, ports=(), error=f"{method} {url} answered {status}")
    return Outcome(output=output)
