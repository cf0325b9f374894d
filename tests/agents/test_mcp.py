"""The MCP server at /mcp/ through the official SDK's client (streamable_http_client + ClientSession)
against a real stack: uvicorn serving designer.asgi, a sandbox service on the libvirt driver
holding the code sessions, and a worker (process driver) for the workflow runs. Keys come from
`manage.py create_api_key`; no key or a bad one is a 401 before the MCP layer."""
from __future__ import annotations

import ast
import asyncio
import base64
import json
import signal
import urllib.error
import urllib.request

import pytest

from tests.agents.tls_stack import skip_without_libvirt
from tests.engine.conftest import Stack, definition, edge, node

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

TOOLS = {"execute_python", "upload_file", "list_files", "download_file", "list_workflows", "run_workflow"}


@pytest.fixture(scope="module")
def stack():
    skip_without_libvirt()
    s = Stack(workers=1)   # the worker keeps the stack's process driver
    try:
        host = s.host_env("host0")
        s.start_sandbox("sandbox0", host, pool_size=2, driver="libvirt", timeout=180)
        s.kill("web", signal.SIGTERM)   # web again, now with the libvirt service's socket
        s.env["SANDBOX_SOCKET"] = host["SANDBOX_SOCKET"]
        s.start_web()
        s.keys = {u: s.manage("create_api_key", u, "--name", "k").strip().splitlines()[-1] for u in ("alice", "bob")}
        yield s
    finally:
        s.close()


def mcp_call(stack, user: str, body, path: str = "/mcp/"):
    """Open a ClientSession on /mcp/ with `user`'s key and return `await body(session)`."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def go():
        headers = {"Authorization": f"Bearer {stack.keys[user]}"}
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=180)) as http:
            async with streamable_http_client(stack.base + path, http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await body(session)

    return asyncio.run(go())


def actors(stack, kind: str) -> list[str]:
    """The actors of the stack's audit events of `kind`, oldest first."""
    out = stack.shell("from governance.audit import AuditEvent;"
                      f"print(list(AuditEvent.objects.filter(kind={kind!r}).order_by('id').values_list('actor', flat=True)))")
    return ast.literal_eval(out.strip().splitlines()[-1])


async def tool(session, name: str, **arguments) -> dict:
    result = await session.call_tool(name, arguments)
    assert not result.isError, result.content
    return result.structuredContent


def test_no_key_or_a_bad_key_is_401_before_mcp_and_a_foreign_host_400(stack):
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    for path in ("/mcp/", "/mcp"):
        for auth in (None, "Bearer sw_000000000000_" + "x" * 43, "Bearer nonsense", f"Token {stack.tokens['alice']}"):
            headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
            if auth:
                headers["Authorization"] = auth
            req = urllib.request.Request(stack.base + path, data=body, headers=headers, method="POST")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 401, (path, auth)
            assert err.value.headers["WWW-Authenticate"].startswith("Bearer")
            assert "detail" in json.loads(err.value.read())
    req = urllib.request.Request(stack.base + "/mcp/", data=body, method="POST", headers={
        "Host": "elsewhere.example", "Authorization": f"Bearer {stack.keys['alice']}",
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as err:   # a host not in ALLOWED_HOSTS
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400


def test_workflow_tools_list_and_run_only_the_key_owners_workflows(stack):
    code = "result = {'doubled': inputs['n'] * 2}"
    wf = definition([node("trigger", "trigger.manual"),
                     node("py", "action.python", {"code": code, "inputs": {"n": "{{ trigger.body.n }}"}})],
                    [edge("trigger", "py")])
    mine = stack.api("alice").create_workflow(wf, name="alice doubles")
    theirs = stack.api("bob").create_workflow(wf, name="bob's")

    async def body(session):
        listed = await session.list_tools()
        workflows = await tool(session, "list_workflows")
        done = await tool(session, "run_workflow", workflow_id=mine["id"], payload={"n": 21}, wait_s=60)
        refused = await session.call_tool("run_workflow", {"workflow_id": theirs["id"], "payload": {}})
        pending = await tool(session, "run_workflow", workflow_id=mine["id"], payload={"n": 1}, wait_s=0)
        return listed, workflows, done, refused, pending

    listed, workflows, done, refused, pending = mcp_call(stack, "alice", body, path="/mcp")
    assert {t.name for t in listed.tools} == TOOLS
    assert [w["name"] for w in workflows["workflows"]] == ["alice doubles"]
    assert done["status"] == "succeeded", done
    assert done["outputs"]["py"] == {"doubled": 42}
    assert done["url"] == f"{stack.base}/api/runs/{done['run_id']}/"
    assert refused.isError and f"no workflow {theirs['id']}" in refused.content[0].text
    assert pending["finished"] is False and pending["status"] in ("queued", "running")
    assert pending["url"].endswith(f"/api/runs/{pending['run_id']}/")
    run = stack.api("alice").get(f"/api/runs/{pending['run_id']}/")[1]
    assert run["started_by"] == "alice"
    assert actors(stack, "run.started") == ["alice/k", "alice/k"]   # the key, in the audit log
    stack.api("alice").wait(pending["run_id"])


def test_python_one_shot_sessions_and_files(stack):
    async def body(session):
        once = await tool(session, "execute_python", code="x = 6 * 7\nprint('hi')\nx")
        forgotten = await tool(session, "execute_python", code="'x' in globals()")
        first = await tool(session, "execute_python", code="counter = 1\ncounter", session_id="s1")
        second = await tool(session, "execute_python", code="counter += 1\ncounter", session_id="s1")
        raised = await tool(session, "execute_python", code="1 / 0", session_id="s1")
        blob = bytes(range(256))
        up = await tool(session, "upload_file", filename="data.bin", session_id="s1",
                        content_base64=base64.b64encode(blob).decode())
        await tool(session, "upload_file", filename="note.txt", session_id="s1", content="hello")
        seen = await tool(session, "execute_python", session_id="s1",
                          code="open('/mnt/data/note.txt').read() + str(len(open('/mnt/data/data.bin','rb').read()))")
        await tool(session, "execute_python", session_id="s1", code="open('/mnt/data/out.txt','w').write('made')")
        files = await tool(session, "list_files", session_id="s1")
        down = await tool(session, "download_file", filename="data.bin", session_id="s1")
        made = await tool(session, "download_file", filename="out.txt", session_id="s1")
        missing = await session.call_tool("download_file", {"filename": "nope.txt", "session_id": "s1"})
        return once, forgotten, first, second, raised, up, seen, files, down, made, missing

    once, forgotten, first, second, raised, up, seen, files, down, made, missing = mcp_call(stack, "alice", body)
    assert once["status"] == "succeeded" and once["result"] == 42 and once["stdout"] == "hi\n", once
    assert forgotten["result"] is False
    assert (first["result"], second["result"]) == (1, 2)
    assert second["session"] == "resumed" and second["session_id"] == "s1"
    assert raised["status"] == "failed" and "ZeroDivisionError" in raised["stderr"], raised
    assert up["files"][0]["filename"] == "data.bin" and up["files"][0]["size"] == 256
    assert seen["result"] == "hello256"
    assert [f["filename"] for f in files["files"]] == ["data.bin", "note.txt", "out.txt"]
    assert base64.b64decode(down["content_base64"]) == bytes(range(256)) and "text" not in down
    assert made["text"] == "made"
    assert missing.isError and "nope.txt" in missing.content[0].text

    async def bobs(session):   # bob's "s1" is a session of his own
        return await tool(session, "execute_python", code="'counter' in globals()", session_id="s1")

    assert mcp_call(stack, "bob", bobs)["result"] is False
    open_sessions = stack.shell("from agents.sessionpools import PoolSession;"
                                "print(sorted(PoolSession.objects.filter(ended__isnull=True)"
                                ".values_list('owner__username', 'identifier')))").strip()
    assert open_sessions == "[('alice', 's1'), ('bob', 's1')]"   # the one-shot sessions ended
    # every execution's audit event names the key: the sessions' and the code step of the run
    # that run_workflow started (the worker records it for the actor the run was started by)
    executions = actors(stack, "execution")
    assert set(executions) == {"alice/k", "bob/k"} and executions.count("alice/k") >= 10, executions
