"""HTTP call: only to hosts on the workflow's `settings.allowed_hosts`, through the egress policy.

Every hop (the first request and each redirect, followed here, at most MAX_REDIRECTS) is decided
by `sandbox.egress.decide`: the name must be listed, it is resolved once, every address it
resolves to is checked, and the connection goes to a checked address while the Host header and
the TLS server name (and certificate check) stay the URL's host.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from engine.steps import Outcome
from sandbox.egress import Decision, decide, open_connection, parse_networks

MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


class HostNotAllowed(Exception):
    pass


class CheckedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address the egress policy checked, never to a new lookup."""

    def __init__(self, decision: Decision, timeout: float, tls: ssl.SSLContext | None):
        super().__init__(decision.host, decision.port, timeout=timeout)
        self.decision, self.tls = decision, tls
        self.default_port = 443 if tls else 80   # the Host header omits the scheme's default port

    def connect(self):
        sock = open_connection(self.decision, self.timeout)
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
           timeout: float, allowed: list[str], cap: int):
    """(status, headers, body bytes up to cap+1) after following redirects, each hop checked.

    `first` is the decision already made for `url`: the name is not resolved a second time.
    """
    tls = ssl.create_default_context()
    for hop in range(MAX_REDIRECTS + 1):
        decision, target = first if hop == 0 else _decision(url, allowed)
        conn = CheckedConnection(decision, timeout, tls if urlsplit(url).scheme == "https" else None)
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
    try:
        status, resp_headers, raw = _fetch(first, method, url, headers, data, timeout, allowed, cap)
    except HostNotAllowed as exc:
        return Outcome.failed(f"redirect refused: {exc}")
    except (http.client.HTTPException, OSError, ValueError) as exc:
        return Outcome.failed(f"{method} {url} failed: {exc}")
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
