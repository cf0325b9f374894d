"""The code-interpreter session HTTP API at /api/sessionpools/{pool}/, compatible with Azure
Container Apps dynamic sessions (the paths, query parameters, bodies and answers LangChain's
SessionsPythonREPLTool / SessionsBashTool and Semantic Kernel's SessionsPythonTool use):

- POST code/execute (also python/execute, with or without a trailing slash), api-version
  2024-02-02-preview: body {"properties": {"code", "timeoutInSeconds", ...}} -> 200
  {"$id", "properties": {"status": Success | Failure | Timeout, "stdout", "stderr", "result",
  "executionResult", "executionTimeInMilliseconds"}}
- POST executions (newer api-versions): body {"code"} or {"shellCommand"} (a shell command, run
  with subprocess in the session) -> {"id", "identifier", "status", "result": {...}}; for a
  shell command "status" is its exit code (as the shell pools answer)
- POST files/upload (multipart, field "file"), GET files, GET files/content/{name} (also
  files/{name}/content), DELETE files/{name}, POST files (newer upload)
- DELETE session (also sessions/{identifier}): ends the session

Every call needs `?identifier=` and `Authorization: Bearer <API key>`. Thin views: the work is
agents/sessions.py, whose errors map to statuses here (429 answers carry Retry-After)."""
from __future__ import annotations

import io
import json
import uuid

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from agents import sessions
from agents.auth import authenticate_request, refusal_json
from agents.keys import Refusal
from agents.quotas import QuotaExceeded, quota_json

AZURE_STATUS = {"succeeded": "Success", "failed": "Failure", "timeout": "Timeout"}


def _error(status: int, message: str):
    from designer.api.errors import error_json

    return error_json(status, message)


def _endpoint(methods: tuple[str, ...]):
    """A view: the Bearer key, the identifier, the method, and the service's errors as answers.
    The view is async and runs the (blocking) work in a thread of its own, so a long execution
    never holds the thread Django runs the other sync views in."""
    def wrap(fn):
        def handle(request, pool: str, **kw):
            close_old_connections()   # as Django does around a request: this pool thread keeps its
            try:                      # connection for CONN_MAX_AGE, and drops a broken one
                try:
                    key = authenticate_request(request)
                except Refusal as refusal:
                    return refusal_json(refusal)
                if key is None:
                    return refusal_json()
                if request.method not in methods:
                    response = _error(405, f"{request.method} is not allowed here")
                    response["Allow"] = ", ".join(methods)
                    return response
                identifier = kw.pop("identifier", None) or request.GET.get("identifier", "")
                try:
                    return fn(request, key, pool, identifier, **kw)
                except QuotaExceeded as exc:
                    return quota_json(exc)
                except sessions.SessionApiError as exc:
                    return _error(exc.status, str(exc))
            finally:
                close_old_connections()

        @csrf_exempt
        async def view(request, pool: str, **kw):
            return await sync_to_async(handle, thread_sensitive=False)(request, pool, **kw)

        view.__name__ = fn.__name__
        view.__doc__ = fn.__doc__
        return view
    return wrap


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise sessions.BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise sessions.BadRequest("the body must be a JSON object")
    return body


def _timeout(props: dict):
    return props.get("timeoutInSeconds", props.get("timeout_in_seconds"))


@_endpoint(("POST",))
def code_execute(request, key, pool, identifier):
    """Run Python in the session (api-version 2024-02-02-preview)."""
    body = _json_body(request)
    props = body.get("properties") if isinstance(body.get("properties"), dict) else body
    ex = sessions.execute(request.user, key, pool, identifier, props.get("code"), _timeout(props))
    stderr = ex.stderr if ex.stderr or ex.status in ("succeeded", "failed") else ex.message
    result = "" if ex.result is None else ex.result
    return JsonResponse({"$id": "1", "properties": {
        "$id": "2", "status": AZURE_STATUS.get(ex.status, "Failure"), "stdout": ex.stdout, "stderr": stderr,
        "result": result, "executionResult": result, "executionTimeInMilliseconds": round(ex.duration_ms)}})


@_endpoint(("POST",))
def executions(request, key, pool, identifier):
    """Run Python code or a shell command in the session (newer api-versions)."""
    body = _json_body(request)
    if isinstance(body.get("properties"), dict):
        body = body["properties"]
    shell = body.get("shellCommand")
    if shell is not None:
        ex = sessions.execute_shell(request.user, key, pool, identifier, shell, _timeout(body))
        status = str(ex.exit_code) if ex.exit_code is not None and ex.status == "succeeded" else "Failed"
    else:
        ex = sessions.execute(request.user, key, pool, identifier, body.get("code"), _timeout(body))
        status = "Succeeded" if ex.status == "succeeded" else "Failed"
    stderr = ex.stderr if ex.stderr or ex.status in ("succeeded", "failed") else ex.message
    result = "" if ex.result is None else ex.result
    return JsonResponse({"id": str(uuid.uuid4()), "identifier": identifier, "executionType": "Synchronous",
                         "status": status, "result": {
                             "stdout": ex.stdout, "stderr": stderr, "executionResult": result,
                             "exitCode": ex.exit_code, "executionTimeInMilliseconds": round(ex.duration_ms)}})


def _entry(f: dict) -> dict:
    """A file in both shapes: the 2024 API's `properties`, the newer API's top-level fields."""
    return {"properties": dict(f), "name": f["filename"], "sizeInBytes": f["size"], "type": "File",
            "lastModifiedAt": f["lastModifiedTime"]}


def _uploaded(request) -> list[tuple[str, bytes]]:
    """The multipart files of the request (any field name; the clients send "file"). A multipart
    body sent under another Content-Type is parsed too: Semantic Kernel's client keeps the
    `Content-Type: application/json` of an earlier execute_code on its uploads."""
    files = request.FILES
    if not files and not request.content_type.startswith("multipart/"):
        body = request.body
        boundary = body.split(b"\r\n", 1)[0][2:] if body.startswith(b"--") else b""
        if boundary and len(boundary) <= 200:
            from django.http.multipartparser import MultiPartParser, MultiPartParserError

            meta = {**request.META, "CONTENT_TYPE": "multipart/form-data; boundary=" + boundary.decode("latin-1"),
                    "CONTENT_LENGTH": str(len(body))}
            try:
                _, files = MultiPartParser(meta, io.BytesIO(body), request.upload_handlers).parse()
            except MultiPartParserError as exc:
                raise sessions.BadRequest(f"the multipart body cannot be read: {exc}") from None
    return [(f.name, f.read()) for _, fs in files.lists() for f in fs]


@_endpoint(("POST",))
def files_upload(request, key, pool, identifier):
    """Upload files (multipart field "file") to the session's /mnt/data."""
    done = sessions.upload(request.user, key, pool, identifier, _uploaded(request))
    return JsonResponse({"$id": "1", "value": [_entry(f) for f in done]})


@_endpoint(("GET", "POST"))
def files(request, key, pool, identifier):
    """GET: the files of /mnt/data; POST: upload (newer api-versions)."""
    if request.method == "POST":
        done = sessions.upload(request.user, key, pool, identifier, _uploaded(request))
        return JsonResponse({**_entry(done[0]), "value": [_entry(f) for f in done]})
    listed = sessions.list_files(request.user, key, pool, identifier)
    return JsonResponse({"$id": "1", "value": [_entry(f) for f in listed]})


def _content(request, key, pool, identifier, name):
    response = HttpResponse(sessions.download(request.user, key, pool, identifier, name),
                            content_type="application/octet-stream")
    response["Content-Disposition"] = "attachment"
    return response


@_endpoint(("GET",))
def file_content(request, key, pool, identifier, name):
    """A file's content."""
    return _content(request, key, pool, identifier, name)


@_endpoint(("DELETE", "GET"))
def file_item(request, key, pool, identifier, name):
    """DELETE a file (GET: its content, like files/content/{name})."""
    if request.method == "GET":
        return _content(request, key, pool, identifier, name)
    sessions.delete_file(request.user, key, pool, identifier, name)
    return HttpResponse(status=204)


@_endpoint(("DELETE",))
def session(request, key, pool, identifier):
    """End the session: its sandbox VM is destroyed (404 when none is open)."""
    if not sessions.end(request.user, key, pool, identifier):
        raise sessions.NotFound(f"no open session {identifier!r} in pool {pool!r}")
    return HttpResponse(status=204)
