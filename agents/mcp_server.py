"""The MCP server (Model Context Protocol over Streamable HTTP, served at /mcp/): tools that let
an agent run Python in sandbox sessions and list and run its owner's workflows.

Built on the official SDK's `FastMCP`, stateless with JSON answers (any web process answers any
request; no MCP session to keep). Every request passed agents.mcp_auth first: the API key's owner
is the user of every tool, and nothing here re-implements a rule of the REST API:

- `execute_python`, `upload_file`, `list_files`, `download_file` call agents.sessions (the
  service layer of the sessions API: pool "default", the key's quotas and the audit come with
  it). With a `session_id` the session's state persists across calls; `execute_python` without
  one runs in a fresh one-shot session that is ended after the call.
- `list_workflows` and `run_workflow` use designer.api's queryset and ownership check, and
  engine.actions to start the run (the same steps as `POST /api/workflows/{id}/runs/`);
  `run_workflow` waits for the run on a reply socket for at most `wait_s` seconds.

`app` is the ASGI app designer/asgi.py mounts at /mcp and /mcp/ (and to which it routes the
lifespan): it starts the SDK's session manager at startup, or at the first request under a
server that sends no lifespan events.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from types import SimpleNamespace
from typing import Any

import anyio
from asgiref.sync import sync_to_async
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from agents.mcp_auth import BearerKeyMiddleware, key_of

POOL = "default"
PATH = "/mcp"
MAX_WAIT_S = 120.0

# Host checks are agents.mcp_auth's (Django's ALLOWED_HOSTS), so the SDK's own are off.
mcp = FastMCP("Stepwell", stateless_http=True, json_response=True, streamable_http_path=PATH,
              transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))


def _key(ctx: Context):
    request = ctx.request_context.request
    if request is None:   # pragma: no cover - only the HTTP transport is served
        raise ToolError("no request")
    return key_of(request.scope)


# --- sessions (agents.sessions) ---------------------------------------------------------------
def _fail(exc: Exception) -> ToolError:
    """A ToolError the agent reads: the sessions layer's message, its HTTP status and Retry-After."""
    status = getattr(exc, "status", None) or 429
    retry = getattr(exc, "retry_after", None)
    return ToolError(f"{exc} (HTTP {status}{f', retry after {retry} s' if retry else ''})")


async def _call(fn_name: str, key, identifier: str, *args):
    """agents.sessions.<fn_name>(user, key, POOL, identifier, ...) on the request's ORM thread;
    its typed errors (SessionApiError, QuotaExceeded) become tool errors."""
    from agents import sessions
    from agents.quotas import QuotaExceeded

    def call():
        try:
            return getattr(sessions, fn_name)(key.user, key, POOL, identifier, *args), None
        except (sessions.SessionApiError, QuotaExceeded) as exc:
            return None, exc

    result, error = await sync_to_async(call)()
    if error is not None:
        raise _fail(error)
    return result


def _plain(value) -> Any:
    """A result of the sessions layer (dataclasses, lists of dicts) as JSON-able data."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _session_id(session_id: str | None) -> str:
    session_id = (session_id or "").strip()
    if not session_id:
        raise ToolError("session_id is required: name the session whose files these are")
    return session_id


def _execution(ex, session_id: str | None) -> dict[str, Any]:
    """The answer of execute_python; a sandbox that could not run the code is a tool error."""
    if ex.status == "error":
        raise ToolError(f"the sandbox could not run the code: {ex.message or 'error'}")
    out = _plain(ex)
    if session_id is None:
        out.pop("session", None)
    else:
        out["session_id"] = session_id
    return out


@mcp.tool()
async def execute_python(code: str, ctx: Context, session_id: str | None = None) -> dict[str, Any]:
    """Run Python code in a sandbox and return its status (succeeded, failed, timeout, ...),
    stdout, stderr and result (the value of the last expression). With a session_id (a name you
    choose: letters, digits, . _ ~ @ : -), variables, imports and the files in /mnt/data persist
    across calls with the same id; a session idle for a while ends by itself. Without one the
    code runs in a fresh sandbox that is discarded afterwards."""
    key = _key(ctx)
    if session_id is not None and session_id.strip():
        session_id = session_id.strip()
        return _execution(await _call("execute", key, session_id, code), session_id)
    identifier = f"mcp-oneshot-{uuid.uuid4().hex}"
    try:
        return _execution(await _call("execute", key, identifier, code), None)
    finally:
        with anyio.CancelScope(shield=True):   # ended even when the client went away meanwhile
            try:
                await _call("end", key, identifier)
            except ToolError:
                pass   # nothing to end (the execution was refused before a session began)


@mcp.tool()
async def upload_file(filename: str, session_id: str, ctx: Context, content: str | None = None,
                      content_base64: str | None = None) -> dict[str, Any]:
    """Put a file into a session's working directory (/mnt/data), given as text (`content`,
    UTF-8) or as bytes (`content_base64`). Code run with execute_python in the same session
    reads it."""
    if (content is None) == (content_base64 is None):
        raise ToolError("give exactly one of content (text) or content_base64 (bytes)")
    if content is not None:
        data = content.encode("utf-8")
    else:
        try:
            data = base64.b64decode(content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("content_base64 is not valid base64") from None
    files = await _call("upload", _key(ctx), _session_id(session_id), [(filename, data)])
    return {"files": files}


@mcp.tool()
async def list_files(session_id: str, ctx: Context) -> dict[str, Any]:
    """The files in a session's working directory (/mnt/data): name, size, last modified."""
    return {"files": await _call("list_files", _key(ctx), _session_id(session_id))}


@mcp.tool()
async def download_file(filename: str, session_id: str, ctx: Context) -> dict[str, Any]:
    """One file of a session's working directory: its bytes as base64 (`content_base64`), and
    as `text` too when they are UTF-8."""
    data = await _call("download", _key(ctx), _session_id(session_id), filename)
    out: dict[str, Any] = {"filename": filename, "size": len(data),
                           "content_base64": base64.b64encode(data).decode()}
    try:
        out["text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return out


# --- workflows (designer.api, engine.actions) ---------------------------------------------
def _workflows(user) -> list[dict]:
    from designer.api.serializers import WorkflowListSerializer
    from designer.api.views import WorkflowViewSet

    view = WorkflowViewSet(request=SimpleNamespace(user=user), action="list")
    return list(WorkflowListSerializer(view.get_queryset().order_by("id"), many=True).data)


@mcp.tool()
async def list_workflows(ctx: Context) -> dict[str, Any]:
    """Your workflows (the API key owner's): id, name, description, version, trigger, last run.
    Run one with run_workflow."""
    key = _key(ctx)
    return {"workflows": await sync_to_async(_workflows)(key.user)}


def _start_run(user, workflow_id: int, payload, reply_socket: str):
    """The steps of `POST /api/workflows/{id}/runs/` (designer.api.runs.WorkflowRuns.post): the
    owner's workflow, a code step that cannot compile blocks the run, the owner's runs cap."""
    from django.http import Http404

    from designer.api.drafts import code_syntax_problems
    from designer.api.runs import _owned_workflow
    from engine import actions
    from engine.models import Run

    try:
        workflow = _owned_workflow(SimpleNamespace(user=user), workflow_id)
    except Http404:
        raise ToolError(f"you have no workflow {workflow_id}") from None
    head = workflow.head.definition if workflow.head else {}
    problems = code_syntax_problems(head, prefix="$.head.definition")
    if problems:
        raise ToolError(f"Not run: a code step has a syntax error ({problems[0]['message'][12:]})")
    try:
        return actions.do_start_run(workflow, actions.trigger_payload(payload), Run.Trigger.MANUAL, user,
                                    reply_socket=reply_socket)
    except actions.TooManyRuns as exc:
        raise ToolError(f"{exc} (retry after {exc.retry_after_s} s)") from None
    except actions.RunRefused as exc:
        raise ToolError(str(exc)) from None


def _result(run, base: str) -> dict:
    """What run_workflow answers: the run's status, error, Response node reply and each step's
    output (a list for a node that ran per item), with the run's API and page URLs."""
    from designer.api.runs import RunSerializer

    data = RunSerializer(run).data
    outputs: dict[str, Any] = {}
    for step in sorted(data["steps"], key=lambda s: (s["item_index"] is not None, s["item_index"] or 0, s["id"])):
        if step["status"] != "succeeded":
            continue
        if step["item_index"] is None:
            outputs[step["node_id"]] = step["output"]
        else:
            outputs.setdefault(step["node_id"], []).append(step["output"])
    return {"run_id": run.pk, "status": run.status, "finished": run.is_finished, "error": run.error,
            "response": run.response, "outputs": outputs if run.is_finished else {},
            "url": base + data["url"], "page": base + data["page"]}


@mcp.tool()
async def run_workflow(workflow_id: int, ctx: Context, payload: Any = None, wait_s: float = 30) -> dict[str, Any]:
    """Run one of your workflows with a JSON payload (the trigger's `body`). Waits up to wait_s
    seconds (at most 120) for the run to finish and returns its status and the output of each
    step; a run still going returns its status and URL (follow it there, or in the REST API)."""
    from engine.wake import ReplyWaiter

    user = _key(ctx).user
    wait_s = max(0.0, min(float(wait_s), MAX_WAIT_S))
    request = ctx.request_context.request
    base = str(request.base_url).rstrip("/") if request is not None else ""
    with ReplyWaiter() as waiter:
        run = await sync_to_async(_start_run)(user, workflow_id, payload, waiter.path)
        run = await waiter.async_wait(run.pk, wait_s, lambda r: r.is_finished, check_first=False)
    return await sync_to_async(_result)(run, base)


# --- ASGI ---------------------------------------------------------------------------------
class _App:
    """The SDK's Starlette app behind the key check, its session manager started once: by the
    lifespan startup (uvicorn), else by the first request. /mcp/ is served as /mcp."""

    def __init__(self):
        self.starlette = mcp.streamable_http_app()
        self.authed = BearerKeyMiddleware(self._serve)
        self._started: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def _hold(self, started: asyncio.Event, stop: asyncio.Event) -> None:
        try:
            async with mcp.session_manager.run():
                started.set()
                await stop.wait()
        finally:
            started.set()   # wake the waiters of a manager that could not start

    async def _ensure_started(self) -> None:
        if self._task is None:
            self._started, self._stop = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._hold(self._started, self._stop))
        await self._started.wait()
        if self._task.done():
            cause = None if self._task.cancelled() else self._task.exception()
            raise RuntimeError("the MCP session manager is not running") from cause

    async def _serve(self, scope, receive, send):
        await self._ensure_started()
        if scope["path"].rstrip("/") == PATH:
            scope = {**scope, "path": PATH, "raw_path": PATH.encode()}
        await self.starlette(scope, receive, send)

    async def lifespan(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._ensure_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None:
                    self._stop.set()
                    await self._task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.lifespan(scope, receive, send)
        await self.authed(scope, receive, send)


app = _App()


def handles(scope) -> bool:
    """Whether designer/asgi.py routes this scope here: /mcp, /mcp/ and the lifespan."""
    if scope["type"] == "lifespan":
        return True
    return scope["type"] == "http" and (scope["path"] == PATH or scope["path"].startswith(PATH + "/"))
