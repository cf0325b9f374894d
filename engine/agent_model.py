"""The AI agent step's model call: one OpenAI-compatible `POST <base_url>/chat/completions`, from
the worker, under the same egress policy as the HTTP call step, through the same code.

The endpoint's host must be allowed by the workflow's `settings.allowed_hosts` (which the instance
policy's egress ceiling bounds) and its addresses pass the same checks (`sandbox.egress.decide`
through `engine.steps.http_call._decision`): the name is resolved once and the connection goes
to a checked address (`http_call.CheckedConnection`) while the Host header and the TLS server
name stay the URL's host; a redirect is followed only to a checked address, without the API key
when it leaves the host (`http_call._fetch`). A watchdog bounds the whole call (connecting and
reading); the response body is capped (STEPWELL_MAX_HTTP_RESPONSE_BYTES).
"""
from __future__ import annotations

import http.client
import json
import time

from django.conf import settings


class ModelCallError(Exception):
    """The endpoint was refused, did not answer in time, or answered something unusable."""


def chat(url: str, api_key: str, body: dict, allowed_hosts: list[str], timeout_s: float) -> dict:
    """The endpoint's JSON answer to `body`.

    :raises ModelCallError: refused by the egress policy, failed, timed out, not 2xx, not JSON.
    """
    from engine.steps.http_call import HostNotAllowed, Watchdog, _decision, _fetch

    try:
        first = _decision(url, allowed_hosts)
    except HostNotAllowed as exc:
        raise ModelCallError(f"the model endpoint {url} is refused by the egress policy: {exc}") from None
    cap = int(settings.STEPWELL_MAX_HTTP_RESPONSE_BYTES)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    failure = ""
    with Watchdog(time.monotonic() + timeout_s, None) as watchdog:
        try:
            status, _headers, raw = _fetch(first, "POST", url, headers, json.dumps(body).encode(), watchdog,
                                           allowed_hosts, cap)
        except HostNotAllowed as exc:
            failure = f"the model endpoint redirected to a refused address: {exc}"
        except (http.client.HTTPException, OSError, ValueError) as exc:
            failure = f"calling the model endpoint failed: {exc.__class__.__name__}: {exc}"
        watchdog.stop()
    if watchdog.reason == "deadline":
        raise ModelCallError(f"the model endpoint did not answer within {timeout_s:g} s")
    if failure:
        raise ModelCallError(failure)
    if len(raw) > cap:
        raise ModelCallError(f"the model endpoint answered more than {cap} bytes")
    text = raw.decode("utf-8", errors="replace")
    if status >= 300:
        raise ModelCallError(f"the model endpoint answered {status}: {text[:500]}")
    try:
        answer = json.loads(text)
    except ValueError:
        raise ModelCallError(f"the model endpoint's answer is not JSON: {text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ModelCallError("the model endpoint's answer is not a JSON object")
    return answer
