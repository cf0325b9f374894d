"""ASGI middleware in front of the MCP server: every request needs `Authorization: Bearer <API
key>` (agents.auth.key_from_header) and a Host in ALLOWED_HOSTS, checked before the MCP layer
reads anything. A missing or refused key is a 401 in the API's error shape with a Bearer
challenge (agents.auth.refusal_json); an unknown Host is a 400. The key goes on to the MCP tools
in the scope (`key_of(scope)`), its owner with `audit_actor` set, as for the REST API.

Like Django's ASGI handler, each request runs in a `ThreadSensitiveContext` (its ORM calls get a
thread of their own, not the process-wide one) whose database connections are closed at its end.
"""
from __future__ import annotations

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

SCOPE_KEY = "stepwell.api_key"


def key_of(scope) -> "object":
    """The ApiKey that authenticated this request (set by `BearerKeyMiddleware`)."""
    return scope[SCOPE_KEY]


def _header(scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v
    return None


async def _answer(send, response: HttpResponse) -> None:
    """Send a (small, complete) Django response over ASGI."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


class BearerKeyMiddleware:
    """Authenticate an HTTP request by its API key, then hand it to `app`; lifespan passes through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        async with ThreadSensitiveContext():
            try:
                await self._authenticated(scope, receive, send)
            finally:
                await sync_to_async(connections.close_all)()

    async def _authenticated(self, scope, receive, send):
        from agents.auth import key_from_header, refusal_json
        from agents.keys import Refusal
        from designer.api.errors import error_json

        host = (_header(scope, b"host") or b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return await _answer(send, error_json(400, "this host is not served here (ALLOWED_HOSTS)"))
        address = (scope.get("client") or ("", 0))[0] or ""
        try:
            key = await sync_to_async(key_from_header)(_header(scope, b"authorization"), address)
        except Refusal as refusal:
            return await _answer(send, refusal_json(refusal))
        if key is None:
            return await _answer(send, refusal_json())
        await self.app({**scope, SCOPE_KEY: key}, receive, send)
