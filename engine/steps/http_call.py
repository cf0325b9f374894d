"""HTTP call: only to hosts on the workflow's `settings.allowed_hosts` (redirects included)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings

from engine.steps import Outcome


class HostNotAllowed(Exception):
    pass


def host_allowed(url: str, allowed: list[str]) -> bool:
    """True when the URL's host (or host:port) matches an entry; '*.example.com' matches subdomains."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return False
    hostport = f"{host}:{parts.port}" if parts.port else host
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif entry in (host, hostport):
            return True
    return False


def check_url(url: str, allowed: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise HostNotAllowed(f"only http and https URLs may be called, not {parts.scheme or 'no scheme'!r}")
    if not host_allowed(url, allowed):
        raise HostNotAllowed(
            f"host {parts.hostname!r} is not on this workflow's allowed hosts "
            f"({', '.join(allowed) if allowed else 'the list is empty'}); add it under settings.allowed_hosts")


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allowed):
        self.allowed = allowed

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allowed)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def run(ctx, params) -> Outcome:
    allowed = list(ctx.settings.get("allowed_hosts", []))
    method, url = str(params.get("method", "GET")).upper(), params.get("url")
    if not isinstance(url, str):
        return Outcome.failed(f"url must be a string, got {url!r}")
    try:
        check_url(url, allowed)
    except HostNotAllowed as exc:
        return Outcome.failed(str(exc))
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
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
    opener = urllib.request.build_opener(_Redirects(allowed), urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    cap = settings.STEPWELL_MAX_HTTP_RESPONSE_BYTES
    try:
        try:
            resp = opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            raw = resp.read(cap + 1)
            status, resp_headers = resp.status, dict(resp.headers.items())
    except HostNotAllowed as exc:
        return Outcome.failed(f"redirect refused: {exc}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Outcome.failed(f"{method} {url} failed: {getattr(exc, 'reason', exc)}")
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
