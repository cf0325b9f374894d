"""What a hook response may carry. Hooks answer on the app's own origin with what a workflow owner
chose, so the owner's choice is narrowed to what cannot act there:

- headers from an allow-list (never `Set-Cookie`, `Content-Security-Policy`, hop-by-hop headers,
  proxy instructions such as `X-Accel-Redirect`; `Location` only with a 3xx status); names are
  HTTP tokens, values carry no CR, LF or NUL;
- bodies as JSON (the default) or text; another content type only when a browser cannot render
  it as a document or script (never HTML, XML, SVG, JavaScript, CSS, PDF, multipart);
- every hook answer, errors included, gets `SANDBOX_HEADERS` (a sandboxing CSP and `nosniff`).

Pure (stdlib only): the Response node's schema (`engine.nodes`), the Response step and the hook
view all use it, so a definition saved before these rules is still held to them when it answers.
"""
from __future__ import annotations

import json
import re

SANDBOX_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'", "X-Content-Type-Options": "nosniff"}
MAX_HEADERS = 50
MAX_VALUE_CHARS = 8192

ALLOWED = ("cache-control", "content-disposition", "content-language", "content-type", "etag", "expires",
           "last-modified", "location", "retry-after", "vary", "access-control-allow-origin",
           "access-control-expose-headers")
# `X-...` headers are the owner's own, except these (browser and proxy instructions).
RESERVED_X = ("x-content-type-options", "x-frame-options", "x-xss-protection", "x-sendfile",
              "x-lighttpd-send-file", "x-permitted-cross-domain-policies", "x-dns-prefetch-control")
RESERVED_X_PREFIXES = ("x-accel-", "x-forwarded-", "x-stepwell-")
_NEVER = {
    "set-cookie": "would set a cookie on the app's origin",
    "set-cookie2": "would set a cookie on the app's origin",
    "content-security-policy": "every hook answer carries the app's own sandboxing policy",
    "content-security-policy-report-only": "every hook answer carries the app's own sandboxing policy",
}
_HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer")

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
_MEDIA = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_ACTIVE_MEDIA = re.compile(r"html|xml|svg|script|xsl|css|pdf|wasm|flash|multipart|mixed-replace")


class Refused(ValueError):
    """The response asks for something a hook answer may not carry."""


def _ci(text: str) -> str:
    """`text` as a case-insensitive regular expression that ECMAScript and Python both read
    (the schema is served to browsers too, so no inline flags)."""
    assert re.fullmatch(r"[A-Za-z0-9-]+", text), text  # header names: nothing to escape
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


# JSON Schema patterns for the Response node's `headers` (engine.nodes).
NAME_PATTERN = ("^(?:" + "|".join(_ci(n) for n in ALLOWED) + "|" + _ci("x-") + "(?!(?:"
                + "|".join(_ci(n[2:]) for n in RESERVED_X) + ")$|" + "|".join(_ci(p[2:]) for p in RESERVED_X_PREFIXES)
                + ")" + _TOKEN + "+)$")
NOT_TOKEN_PATTERN = "[^" + _TOKEN[1:]
VALUE_FORBIDDEN_PATTERN = r"[\r\n\x00]"
LOCATION_PATTERN = "^" + _ci("location") + "$"


def header_problem(name: str, value: object, status: int) -> str | None:
    """Why header `name: value` may not go out with `status`, or None when it may."""
    if not isinstance(name, str) or not name or not re.fullmatch(_TOKEN + "+", name):
        return f"{name!r} is not a valid header name"
    low = name.lower()
    if low in _NEVER:
        return f"{name} is never sent by a hook: it {_NEVER[low]}"
    if low in _HOP_BY_HOP or low.startswith("proxy-"):
        return f"{name} is a hop-by-hop header; the server sets it"
    if low == "location" and not 300 <= status < 400:
        return f"{name} is only sent with a 3xx status_code (got {status})"
    if low.startswith("x-"):
        if low in RESERVED_X or low.startswith(RESERVED_X_PREFIXES):
            return f"{name} is an instruction to browsers or proxies; a hook may not send it"
    elif low not in ALLOWED:
        return f"{name} is not a header a hook may send (allowed: {', '.join(ALLOWED)}, and X-... headers)"
    if not isinstance(value, str):
        return f"the value of {name} must be a string"
    if _VALUE_FORBIDDEN.search(value):
        return f"the value of {name} contains a line break or NUL"
    if len(value) > MAX_VALUE_CHARS:
        return f"the value of {name} is longer than {MAX_VALUE_CHARS} characters"
    return None


def check(status: object, headers: object) -> dict[str, str]:
    """The headers of a reply with `status`, or Refused naming every problem (so the message does
    not depend on the order the headers were stored in: PostgreSQL's jsonb reorders keys)."""
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise Refused(f"status_code must be an integer between 100 and 599, got {status!r}")
    if not isinstance(headers, dict):
        raise Refused("headers must be an object")
    if len(headers) > MAX_HEADERS:
        raise Refused(f"at most {MAX_HEADERS} headers")
    problems = [p for p in (header_problem(n, v, status) for n, v in sorted(headers.items())) if p]
    if problems:
        raise Refused("; ".join(problems))
    return dict(headers)


def content_type_and_body(content_type: str | None, body: object) -> tuple[str, bytes]:
    """The Content-Type to send and the encoded body: JSON unless the reply names a text or other
    inert type; a string body is then sent as it is (UTF-8), anything else as JSON text."""
    if content_type is None:
        return "application/json", json.dumps(body).encode()
    media = content_type.split(";", 1)[0].strip().lower()
    if not _MEDIA.fullmatch(media):
        raise Refused(f"Content-Type {content_type!r} is not a media type")
    if _ACTIVE_MEDIA.search(media):
        raise Refused(f"Content-Type {media} may run in a browser; a hook answers with JSON, text/plain "
                      f"or another type browsers do not render")
    if media == "application/json" or media.endswith("+json"):
        return media, json.dumps(body).encode()
    data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return (f"{media}; charset=utf-8" if media.startswith("text/") else media), data


def render(response: dict) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body bytes) of a Response node's output, with SANDBOX_HEADERS added;
    Refused when the output breaks a rule above."""
    status = response.get("status_code", 200)
    headers = check(status, response.get("headers") or {})
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    media, data = content_type_and_body(content_type, response.get("body"))
    out = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    out["Content-Type"] = media
    out.update(SANDBOX_HEADERS)
    return status, out, data
