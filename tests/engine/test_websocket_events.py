"""Live run events over websockets: authentication, ownership, origin, and events that the
worker process writes reaching a browser connected to the web process (in-memory layer)."""
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from designer.actions import do_create_workflow
from designer.asgi import application
from engine.actions import do_start_run, trigger_payload
from engine.models import StepRun
from engine.states import transition
from engine.status import Status


def _cookie(user) -> bytes:
    c = Client()
    c.force_login(user)
    return f"sessionid={c.cookies['sessionid'].value}".encode()


def _headers(user=None, origin=b"http://testserver"):
    h = [(b"origin", origin), (b"host", b"testserver")]
    if user is not None:
        h.append((b"cookie", _cookie(user)))
    return h


async def _connect(path, headers):
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await comm.connect(timeout=5)
    return comm, connected, code


def _run_of(user, definition):
    wf = do_create_workflow(user, "ws", definition=definition)
    run = do_start_run(wf, trigger_payload({}))  # queued; no worker runs in this process
    return wf, run


@pytest.mark.django_db(transaction=True)
def test_it_closes_anonymous_and_foreign_connections(alice, bob, definition):
    wf, run = _run_of(alice, definition)

    async def scenario():
        for path in (f"/ws/workflows/{wf.pk}/", f"/ws/runs/{run.pk}/"):
            comm, connected, code = await _connect(path, _headers())
            assert not connected and code == 4401
            comm, connected, code = await _connect(path, await sync_to_async(_headers)(bob))
            assert not connected and code == 4404
        comm, connected, _ = await _connect(f"/ws/runs/{run.pk}/",
                                            await sync_to_async(_headers)(alice, b"http://evil.example"))
        assert not connected

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_the_owner_receives_status_events(alice, definition):
    wf, run = _run_of(alice, definition)

    async def scenario():
        headers = await sync_to_async(_headers)(alice)
        run_comm, ok, _ = await _connect(f"/ws/runs/{run.pk}/", headers)
        wf_comm, ok2, _ = await _connect(f"/ws/workflows/{wf.pk}/", headers)
        assert ok and ok2
        first = await run_comm.receive_json_from(timeout=3)  # history from the start of the run
        assert first["type"] == "run.status" and first["status"] == "queued"

        def move():
            transition(run, Status.RUNNING)
            step = StepRun.objects.create(run=run, node_id="python_1", node_type="action.python")
            transition(step, Status.RUNNING)
            transition(step, Status.SUCCEEDED, output={"n": 1})
        await sync_to_async(move)()
        got = [await run_comm.receive_json_from(timeout=3) for _ in range(3)]
        assert [(e["type"], e["node_id"], e["status"]) for e in got] == [
            ("run.status", None, "running"), ("step.status", "python_1", "running"),
            ("step.status", "python_1", "succeeded")]
        got_wf = [await wf_comm.receive_json_from(timeout=3) for _ in range(3)]
        assert [e["event_id"] for e in got_wf] == [e["event_id"] for e in got]
        await run_comm.send_json_to({"type": "ping"})
        assert (await run_comm.receive_json_from(timeout=3))["type"] == "pong"
        await run_comm.disconnect()
        await wf_comm.disconnect()

    async_to_sync(scenario)()


def test_events_from_the_worker_process_reach_the_web_process(stack, wf):
    """Across processes with the in-memory channel layer: uvicorn streams what the worker wrote."""
    from websockets.sync.client import connect

    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("calc", "action.python", {"code": "result = 1"})],
        [wf.edge("trigger", "calc")]))
    key = stack.session_key("alice")
    url = f"ws://127.0.0.1:{stack.port}/ws/workflows/{w['id']}/"
    with connect(url, additional_headers={"Cookie": f"sessionid={key}", "Origin": stack.base}) as ws:
        time.sleep(0.3)  # subscribed from "now"
        run = api.start(w["id"])
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            e = json.loads(ws.recv(timeout=20))
            seen.append((e["node_id"], e["status"]))
            if e["type"] == "run.status" and e["status"] == "succeeded":
                break
    assert seen[0] == (None, "queued") and seen[-1] == (None, "succeeded")
    assert ("calc", "running") in seen and ("calc", "succeeded") in seen
    assert all(e for e in seen)
    assert api.get(f"/api/runs/{run['id']}/")[1]["status"] == "succeeded"
