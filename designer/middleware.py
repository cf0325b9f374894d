"""Guards in front of the views: a request-body size limit (ASGI, before Django reads the body),
the API's errors always in its JSON shape, and the sign-in page's answer to a throttled client (429)."""
from __future__ import annotations

import json

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.urls import reverse

from designer import throttling


class BodyTooLarge:
    """ASGI middleware: refuse a request body larger than the limit with 413, before any of it is
    read (Content-Length) or as soon as a chunked body passes it; Django never spools it.

    `upload_prefixes` (wheel uploads: the API's and the admin's) get `upload_limit`, every other
    path gets `limit`. Websockets and lifespan pass through."""

    def __init__(self, app, limit: int | None = None, upload_limit: int | None = None,
                 upload_prefixes: tuple[str, ...] | None = None):
        self.app = app
        self.limit = limit if limit is not None else settings.STEPWELL_MAX_REQUEST_BYTES
        self.upload_limit = max(self.limit, upload_limit if upload_limit is not None
                                else settings.STEPWELL_MAX_UPLOAD_BYTES)
        self.upload_prefixes = upload_prefixes if upload_prefixes is not None \
            else tuple(settings.STEPWELL_UPLOAD_PATH_PREFIXES)

    def limit_for(self, path: str) -> int:
        return self.upload_limit if path.startswith(self.upload_prefixes) else self.limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            return await _refuse(send, limit, scope.get("path", ""))

        state = {"received": 0, "started": False, "refused": False}

        async def guarded_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _refuse(send, limit, scope.get("path", ""))
                    # Django sees the client go away and drops what it has read.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)


async def _refuse(send, limit: int, path: str = "") -> None:
    from designer.api.errors import too_large_message

    message = (too_large_message(None, limit) if path.startswith(JSON_PREFIXES)
               else f"The request body is larger than the {limit:,}-byte limit.")
    body = json.dumps({"detail": message, "errors": [{"path": "$", "message": message}]}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


JSON_PREFIXES = ("/api/", "/hooks/")


class ApiErrorsAsJson:
    """Errors under /api/ in the API's one JSON shape (designer/api/errors.py), also those Django
    answers itself with an HTML page: an unknown URL (404), a crash (500). A body over
    DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig) gets 413 with the limits under /api/ and
    /hooks/ (a hook's own answers, which its Response node may write as HTML, are left alone)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self._reshape(request, self.get_response(request))

    async def _acall(self, request):
        return self._reshape(request, await self.get_response(request))

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig) and request.path_info.startswith(JSON_PREFIXES):
            from designer.api.errors import request_too_large_body

            return _json(request_too_large_body(request), 413)
        return None

    @staticmethod
    def _reshape(request, response):
        if (response.status_code < 400 or not request.path_info.startswith("/api/")
                or "json" in response.get("Content-Type", "")):
            return response
        from designer.api.errors import error_body

        message = {400: "Bad request.", 404: "Not found.", 500: "Server error: the request failed; it was logged."}.get(
            response.status_code, response.reason_phrase or f"HTTP {response.status_code}")
        return _json(error_body(message), response.status_code)


def _json(body: dict, status: int) -> HttpResponse:
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


class LoginThrottleMiddleware:
    """A sign-in POST from a client address or for a username with too many recent failures gets
    429 and a Retry-After, before the password is looked at (designer/throttling.py counts)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path_info in _login_paths():
            wait = throttling.login_blocked(request, request.POST.get("username"))
            if wait is not None:
                response = HttpResponse(
                    f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds.\n",
                    status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(int(wait) + 1)
                return response
        return self.get_response(request)


def _login_paths() -> tuple[str, ...]:
    return (reverse("login"), reverse("admin:login"))
