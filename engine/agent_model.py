"""The AI agent step's model call: one OpenAI-compatible `POST <base_url>/chat/completions`, from
the worker, under the same egress policy as the HTTP call step.

The endpoint's host must be allowed by the workflow's `settings.allowed_hosts` (which the instance
policy's egress ceiling bounds) and its addresses pass the same checks (`sandbox.egress.decide`
through `engine.steps.http_call._decision`): the name is resolved once, and httpx connects only to
a checked address (a network backend that never resolves again) while the Host header and the TLS
server name stay the URL's host. Redirects are not followed. Timeouts bound the connect, each read
and the whole call; the response body is capped (STEPWELL_MAX_HTTP_RESPONSE_BYTES).
"""
from __future__ import annotations

import json
import ssl
import time

import httpcore
import httpx
from django.conf import settings

from sandbox.egress import Decision

CONNECT_TIMEOUT_S = 10.0


class ModelCallError(Exception):
    """The endpoint was refused, did not answer in time, or answered something unusable."""


class _CheckedBackend(httpcore.SyncBackend):
    """Connects to the decision's checked addresses only (for the decision's host and port)."""

    def __init__(self, decision: Decision):
        self.decision = decision

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if host.strip("[]").lower() != self.decision.host.strip("[]").lower() or port != self.decision.port:
            raise httpcore.ConnectError(f"{host}:{port} was not checked by the egress policy")
        if not self.decision.allowed:
            raise httpcore.ConnectError(self.decision.reason)
        last: Exception | None = None
        for address in self.decision.addresses:   # the checked addresses, never a new lookup
            try:
                return super().connect_tcp(address.strip("[]"), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address to connect to for {host}:{port}")

    def connect_unix_socket(self, *args, **kwargs):  # never: only checked TCP addresses
        raise httpcore.ConnectError("unix sockets are not reachable from an agent step")


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, decision: Decision):
        super().__init__(retries=0)
        ssl_context = ssl.create_default_context()   # the system's CAs, like the HTTP call step
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, max_connections=1,
                                             network_backend=_CheckedBackend(decision))


def chat(url: str, api_key: str, body: dict, allowed_hosts: list[str], timeout_s: float) -> dict:
    """The endpoint's JSON answer to `body`.

    :raises ModelCallError: refused by the egress policy, failed, timed out, not 2xx, not JSON.
    """
    from engine.steps.http_call import HostNotAllowed, _decision

    try:
        decision, _target = _decision(url, allowed_hosts)
    except HostNotAllowed as exc:
        raise ModelCallError(f"the model endpoint {url} is refused by the egress policy: {exc}") from None
    cap = int(settings.STEPWELL_MAX_HTTP_RESPONSE_BYTES)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(transport=_CheckedTransport(decision), timeout=timeout, follow_redirects=False,
                          trust_env=False) as client:
            with client.stream("POST", url, content=json.dumps(body).encode(), headers=headers) as resp:
                raw = bytearray()
                for chunk in resp.iter_bytes():
                    raw.extend(chunk)
                    if len(raw) > cap:
                        raise ModelCallError(f"the model endpoint answered more than {cap} bytes")
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("deadline")
                status = resp.status_code
    except httpx.TimeoutException:
        raise ModelCallError(f"the model endpoint did not answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ModelCallError(f"calling the model endpoint failed: {exc.__class__.__name__}: {exc}") from None
    text = bytes(raw).decode("utf-8", errors="replace")
    if status >= 300:
        raise ModelCallError(f"the model endpoint answered {status}: {text[:500]}")
    try:
        answer = json.loads(text)
    except ValueError:
        raise ModelCallError(f"the model endpoint's answer is not JSON: {text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ModelCallError("the model endpoint's answer is not a JSON object")
    return answer
