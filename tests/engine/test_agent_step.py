"""The AI agent step (`action.agent`, engine/steps/agent.py) on a real stack: a scripted
OpenAI-compatible chat-completions server on loopback plays the model, a libvirt sandbox service
holds the step's Python session (sessions need the libvirt driver), and the worker runs the step.

Covered (the stack tests run VMs: markers libvirt and slow): a tool call runs the code, its result goes back to the model and the final answer is the
step's output; state carries from one tool call to the next; a model that keeps calling the tool
hits the turn limit; tool arguments that are not JSON or lack `code` fail the step with a clear
error; the connection's API key reaches the endpoint but never the run's stored data or events;
an endpoint the workflow's egress allow-list does not cover is refused before any request. And
without a stack: staff set the key in the admin, where it is stored encrypted and never shown.

Run under the libvirt lock: `flock /tmp/libvirt-tests.lock pytest tests/engine/test_agent_step.py`.
"""
from __future__ import annotations

import hashlib
import json
import time

import pytest

from tests.engine.conftest import Stack, definition, edge, node
from tests.helpers.httpserver import LoopbackServer, Reply


API_KEY = "sk-test-agent-key-7f3a9c2e51d04b8a"


def tool_call(n: int, arguments: str) -> dict:
    return {"id": f"call_{n}", "type": "function",
            "function": {"name": "execute_python", "arguments": arguments}}


def completion(message: dict) -> Reply:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return Reply(200, {"id": "chatcmpl-test", "object": "chat.completion", "model": "scripted",
                       "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                    "finish_reason": finish}]})


def model(request) -> Reply:
    """The scripted model: what it does depends on the connection's model name."""
    body = request.json()
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    name = body["model"]
    if name == "two-calls":
        if not tools:
            return completion({"content": "Let me set x.", "tool_calls": [tool_call(1, json.dumps(
                {"code": "x = 21\nprint('x is set')\nx"}))]})
        if len(tools) == 1:
            return completion({"content": None, "tool_calls": [tool_call(2, json.dumps({"code": "x * 2"}))]})
        if len(tools) == 2:
            return completion({"content": "A chart.", "tool_calls": [tool_call(3, json.dumps(
                {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nprint('drawn')"}))]})
        result = tools[1]["content"].split("result:\n", 1)[1].split("\n", 1)[0]
        # a careless model repeats the key it was sent: it must be masked in what is stored
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return completion({"content": f"The answer is {result}. (key {key})"})
    if name == "slow-code":
        return completion({"content": None, "tool_calls": [tool_call(1, json.dumps(
            {"code": "import time\nprint('sleeping', flush=True)\ntime.sleep(120)"}))]})
    if name == "loop":
        return completion({"content": "again", "tool_calls": [tool_call(len(tools) + 1, json.dumps({"code": "1 + 1"}))]})
    if name == "not-json":
        return completion({"content": None, "tool_calls": [tool_call(1, "{code: print(1)")]})
    if name == "no-code":
        return completion({"content": None, "tool_calls": [tool_call(1, json.dumps({"source": "print(1)"}))]})
    raise AssertionError(f"unexpected model {name!r}")


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(model) as srv:
        yield srv
        assert not srv.errors, srv.errors


@pytest.fixture(scope="module")
def agent_stack(server):
    """Web, a libvirt sandbox service (it holds the sessions) and one worker that uses it; the
    instance lets worker-side calls reach 127.0.0.1 (the scripted model)."""
    stack = Stack(workers=0, env={"STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32"})
    try:
        host = stack.host_env("host0")
        stack.start_sandbox("sandbox0", host, pool_size=2, driver="libvirt", timeout=240)
        stack.start_worker("worker0", env={**host, "SANDBOX_DRIVER": "libvirt"})
        stack.sandbox_socket = host["SANDBOX_SOCKET"]
        for name in ("two-calls", "loop", "not-json", "no-code", "slow-code"):
            stack.shell("from engine.models import ModelConnection\n"
                        f"c = ModelConnection(name={name!r}, base_url={server.url('/v1')!r}, model={name!r})\n"
                        f"c.set_api_key({API_KEY!r}); c.save()")
        yield stack
    finally:
        stack.close()


def agent_workflow(connection: str, workflow_hosts: list, **params) -> dict:
    agent = node("agent", "action.agent", {"connection": connection, "system_prompt": "You analyse data.",
                                           "prompt": "Question: {{ trigger.body.question }}", **params})
    return definition([node("start", "trigger.manual"), agent], [edge("start", "agent")],
                      allowed_hosts=workflow_hosts)


def run_agent(stack, server, connection: str, allowed_hosts=None, **params) -> dict:
    api = stack.api()
    hosts = [server.netloc] if allowed_hosts is None else allowed_hosts
    wf = api.create_workflow(agent_workflow(connection, hosts, **params), name=f"agent {connection}")
    run = api.start(wf["id"], {"question": "what is twice 21?"})
    return api.wait(run["id"], timeout=240)


def agent_step(run: dict) -> dict:
    return next(s for s in run["steps"] if s["node_id"] == "agent")


def sessions_held(stack) -> int:
    from sandbox.client import SandboxClient

    return SandboxClient(stack.sandbox_socket).status()["sessions_held"]


@pytest.mark.libvirt
@pytest.mark.slow
def test_tool_calls_share_state_and_the_answer_is_the_output(agent_stack, server):
    before = len(server.requests)
    run = run_agent(agent_stack, server, "two-calls")
    step = agent_step(run)
    assert run["status"] == "succeeded", (run["error"], step["error"])
    out = step["output"]
    assert out["answer"].startswith("The answer is 42."), out   # x from the first call, used in the second
    roles = [t["role"] for t in out["turns"]]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 3 + ["assistant"], roles
    assert out["turns"][1]["content"] == "Question: what is twice 21?"   # the prompt's mapping resolved
    first, second = out["turns"][3], out["turns"][5]
    assert first["code"].startswith("x = 21") and first["stdout"] == "x is set\n" and first["result"] == 21, first
    assert second["code"] == "x * 2" and second["status"] == "succeeded" and second["result"] == 42, second
    chart = out["turns"][7]   # a figure: a produced file of the step, described to the model in words
    assert chart["stdout"] == "drawn\n" and chart["figures"] == ["turn3_figure1.png"], chart
    files = {f["name"]: f for f in step["files"]}
    assert "turn3_figure1.png" in files, step["files"]
    status, content, _ = agent_stack.api().call("GET", files["turn3_figure1.png"]["url"].removeprefix(
        agent_stack.base), raw=True)
    assert status == 200 and content.startswith(b"\x89PNG"), status
    assert step["sandbox"]["executions"] == 3 and step["sandbox"]["session_s"] > 0, step["sandbox"]
    assert sessions_held(agent_stack) == 0   # the step ended its session
    # the model saw the tool results as tool messages answering its calls
    calls = server.requests[before:]
    assert len(calls) == 4 and all(r.path == "/v1/chat/completions" for r in calls)
    last = calls[-1].json()
    assert [m["role"] for m in last["messages"]] == ["system", "user"] + ["assistant", "tool"] * 3
    assert last["messages"][3]["tool_call_id"] == "call_1" and "x is set" in last["messages"][3]["content"]
    assert "[figure 1: a PNG image of" in last["messages"][7]["content"], last["messages"][7]
    assert last["tools"][0]["function"]["name"] == "execute_python"
    # the key went to the endpoint, and nowhere into what the run stored or told
    assert calls[0].headers.get("Authorization") == f"Bearer {API_KEY}"
    assert "***MODEL_API_KEY***" in out["answer"]
    status, events = agent_stack.api().get(f"/api/runs/{run['id']}/events/")
    assert status == 200
    for stored in (run, events):
        assert API_KEY not in json.dumps(stored)
    stored = json.loads(agent_stack.shell(
        "from engine.models import StepRun, StepEvent; from governance.audit import AuditEvent;"
        "from governance.usage import Usage; import json;"
        f"print(json.dumps({{'steps': list(StepRun.objects.filter(run_id={run['id']}).values()),"
        f"'events': list(StepEvent.objects.filter(step__run_id={run['id']}).values('data')),"
        f"'audit': list(AuditEvent.objects.filter(run_id={run['id']}).values('kind', 'step_id', 'payload')),"
        f"'usage': list(Usage.objects.filter(step_id={step['id']}).values('step_id'))}}, default=str))"
    ).strip().splitlines()[-1])
    assert API_KEY not in json.dumps(stored)
    # audited (one execution event with the code of every tool call) and metered like a code step
    execution = [e for e in stored["audit"] if e["kind"] == "execution"]
    assert len(execution) == 1 and execution[0]["step_id"] == step["id"], stored["audit"]
    code = "\n\n".join(t["code"] for t in out["turns"] if t["role"] == "tool")
    assert execution[0]["payload"]["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()
    assert stored["usage"] == [{"step_id": step["id"]}]


@pytest.mark.libvirt
@pytest.mark.slow
def test_a_model_that_keeps_calling_the_tool_hits_the_turn_limit(agent_stack, server):
    run = run_agent(agent_stack, server, "loop", max_turns=2)
    step = agent_step(run)
    assert run["status"] == "failed" and step["status"] == "failed"
    assert "the model did not answer within 2 turns" in step["error"], step["error"]
    turns = step["output"]["turns"]   # the turns so far are kept
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert step["output"]["answer"] is None and turns[-1]["result"] == 2
    assert sessions_held(agent_stack) == 0   # ended on failure too


@pytest.mark.libvirt
@pytest.mark.slow
def test_invalid_tool_arguments_fail_the_step_with_the_problem_named(agent_stack, server):
    run = run_agent(agent_stack, server, "not-json")
    step = agent_step(run)
    assert step["status"] == "failed"
    assert "execute_python with arguments that are not JSON" in step["error"], step["error"]
    run = run_agent(agent_stack, server, "no-code")
    step = agent_step(run)
    assert step["status"] == "failed"
    assert "without a `code` string argument" in step["error"] and "source" in step["error"], step["error"]
    assert [t["role"] for t in step["output"]["turns"]] == ["system", "user"]   # nothing ran


@pytest.mark.libvirt
@pytest.mark.slow
def test_an_endpoint_outside_the_workflows_allow_list_is_refused(agent_stack, server):
    before = len(server.requests)
    run = run_agent(agent_stack, server, "two-calls", allowed_hosts=["127.0.0.1:1"])
    step = agent_step(run)
    assert step["status"] == "failed"
    assert "is refused by the egress policy" in step["error"] and "not allowed by this workflow" in step["error"], \
        step["error"]
    assert len(server.requests) == before   # not a single request reached it


@pytest.mark.libvirt
@pytest.mark.slow
def test_cancelling_the_run_stops_the_code_and_ends_the_session(agent_stack, server):
    api = agent_stack.api()
    wf = api.create_workflow(agent_workflow("slow-code", [server.netloc]), name="agent slow")
    run = api.start(wf["id"], {"question": "wait"})
    api.wait(run["id"], timeout=120, until=lambda r: any(
        s["node_id"] == "agent" and s["status"] == "running" for s in r["steps"]) and sessions_held(agent_stack) == 1)
    status, _ = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 200
    t0 = time.monotonic()
    done = api.wait(run["id"], timeout=60)
    assert done["status"] == "cancelled" and agent_step(done)["status"] == "cancelled", done
    assert time.monotonic() - t0 < 30   # not the code's 120 s
    deadline = time.monotonic() + 15   # the cancelled execution's VM goes, then the session
    while sessions_held(agent_stack) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sessions_held(agent_stack) == 0


def test_staff_set_the_api_key_in_the_admin_encrypted_and_never_shown(admin_client):
    from engine.models import ModelConnection

    r = admin_client.post("/admin/engine/modelconnection/add/", {
        "name": "openai", "base_url": "https://api.example.com/v1", "model": "gpt-test", "api_key": API_KEY})
    assert r.status_code == 302, r.content[:2000]
    conn = ModelConnection.objects.get(name="openai")
    assert conn.api_key() == API_KEY and API_KEY not in conn.api_key_ciphertext
    assert conn.completions_url() == "https://api.example.com/v1/chat/completions"
    page = admin_client.get(f"/admin/engine/modelconnection/{conn.pk}/change/")
    assert page.status_code == 200 and API_KEY.encode() not in page.content
    r = admin_client.post(f"/admin/engine/modelconnection/{conn.pk}/change/", {   # an empty key keeps it
        "name": "openai", "base_url": "https://api.example.com/v1", "model": "gpt-other", "api_key": ""})
    assert r.status_code == 302
    conn.refresh_from_db()
    assert conn.model == "gpt-other" and conn.api_key() == API_KEY
    listing = admin_client.get("/admin/engine/modelconnection/")
    assert listing.status_code == 200 and API_KEY.encode() not in listing.content


def test_the_definition_checks_an_agent_nodes_limits_and_hosts(settings):
    from engine.validation import validate_definition

    ok = agent_workflow("local", ["api.example.com", "127.0.0.1:8080"], max_turns=3, allowed_hosts=["api.example.com"])
    assert validate_definition(ok) == []
    bad = agent_workflow("local", [], max_turns=0)
    del bad["nodes"][1]["parameters"]["prompt"]
    messages = " | ".join(p.message for p in validate_definition(bad))
    assert "'prompt' is a required property" in messages and "0 is less than the minimum of 1" in messages, messages
    settings.STEPWELL_MAX_STEP_TIMEOUT_S = 100
    wide = agent_workflow("local", ["api.example.com"], allowed_hosts=["evil.example.org"], timeout_s=200)
    messages = " | ".join(p.message for p in validate_definition(wide))
    assert "'evil.example.org' is not covered by the workflow's settings.allowed_hosts" in messages, messages
    assert "200s is above this server's limit of 100s" in messages, messages


@pytest.mark.django_db
def test_a_workflow_naming_no_model_connection_is_not_saved(django_user_model):
    """Refused at save, with the node's path and the names that exist, rather than at the run."""
    from django.test import Client

    from engine.agent_connections import ModelConnection

    c = Client()
    c.force_login(django_user_model.objects.create_user("carol", password="pw-carol-123"))
    d = agent_workflow("nope", [])
    r = c.post("/api/workflows/", {"name": "agent", "definition": d}, content_type="application/json")
    assert r.status_code == 400, r.content
    [err] = r.json()["errors"]
    assert err["path"] == "$.definition.nodes[1].parameters.connection", err
    assert err["message"] == ("no model connection named 'nope'; known: none yet: staff add them in the admin "
                              "(Model connections)"), err
    ModelConnection.objects.create(name="local", base_url="http://127.0.0.1:9/v1", model="scripted")
    r = c.post("/api/workflows/", {"name": "agent", "definition": d}, content_type="application/json")
    assert r.json()["errors"][0]["message"] == "no model connection named 'nope'; known: 'local'"
    r = c.post("/api/workflows/", {"name": "agent", "definition": agent_workflow("local", [])},
               content_type="application/json")
    assert r.status_code == 201, r.content
