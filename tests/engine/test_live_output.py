"""Live output (issue 13): what a running code step prints reaches the run's websocket and its
events API as `step.output` events while the step still runs, in runs and in step tests; a
cancelled step keeps what it printed before the cancel, flushed or not."""
from __future__ import annotations

import json
import threading
import time

CODE = ("import sys, time\nprint('tick one')\nprint('careful', file=sys.stderr)\n"
        "time.sleep(4)\nprint('tick two')\nresult = 'done'")


def _flow(wf, code=CODE):
    return wf.definition([wf.node("trigger", "trigger.manual"), wf.node("py", "action.python", {"code": code})],
                         [wf.edge("trigger", "py")])


def _collect(ws, until, timeout=120):
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
        events.append(e)
        if until(e):
            return events
    raise AssertionError(f"not seen in time: {events}")


def test_run_output_streams_over_the_websocket_and_the_events_api(stack, wf):
    from websockets.sync.client import connect

    api = stack.api()
    w = api.create_workflow(_flow(wf))
    key = stack.session_key("alice")
    headers = {"Cookie": f"sessionid={key}", "Origin": stack.base}
    run = api.start(w["id"])
    with connect(f"ws://127.0.0.1:{stack.port}/ws/runs/{run['id']}/", additional_headers=headers) as ws:
        events = _collect(ws, lambda e: e["type"] == "run.status" and e["status"] == "succeeded")
    outputs = [e for e in events if e["type"] == "step.output"]
    assert outputs, events
    assert all(e["node_id"] == "py" and e["data"]["live"] for e in outputs)
    text = "".join(e["data"]["stdout"] for e in outputs)
    assert "tick one" in text and "careful" in "".join(e["data"]["stderr"] for e in outputs)
    # "tick one" arrived while the step was running: before "tick two" was printed, and before
    # the step's final status
    first = next(i for i, e in enumerate(events) if e["type"] == "step.output" and "tick one" in e["data"]["stdout"])
    assert "tick two" not in events[first]["data"]["stdout"]
    done = next(i for i, e in enumerate(events) if e["type"] == "step.status" and e["node_id"] == "py"
                and e["status"] == "succeeded")
    assert first < done
    # the events API returns the same events; the step record has the whole output
    status, listed = api.get(f"/api/runs/{run['id']}/events/")
    assert status == 200 and [e["event_id"] for e in listed if e["type"] == "step.output"] == [
        e["event_id"] for e in outputs]
    step = next(s for s in api.get(f"/api/runs/{run['id']}/")[1]["steps"] if s["node_id"] == "py")
    assert step["stdout"] == "tick one\ntick two\n"


def test_step_test_output_streams_on_the_workflow_socket(stack, wf):
    from websockets.sync.client import connect

    api = stack.api()
    w = api.create_workflow(_flow(wf))
    headers = {"Cookie": f"sessionid={stack.session_key('alice')}", "Origin": stack.base}
    answer = {}
    with connect(f"ws://127.0.0.1:{stack.port}/ws/workflows/{w['id']}/", additional_headers=headers) as ws:
        t = threading.Thread(target=lambda: answer.setdefault(
            "r", api.post(f"/api/workflows/{w['id']}/nodes/py/test/", {"timeout_s": 120}, timeout=180)))
        t.start()
        events = _collect(ws, lambda e: e["type"] == "step.output" and "tick one" in e["data"]["stdout"])
        t.join(180)
    status, body = answer["r"]
    assert status == 200, body
    assert body["stdout"] == "tick one\ntick two\n"
    assert events[-1]["run_id"] == body["run"]["id"]
    assert "tick two" not in events[-1]["data"]["stdout"]   # seen while the test still ran


def test_a_cancelled_step_keeps_output_printed_without_flush(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, "import time\nprint('printed, never flushed')\ntime.sleep(120)"))
    run = api.start(w["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:   # wait until the line was seen live, then cancel
        status, events = api.get(f"/api/runs/{run['id']}/events/")
        if any(e["type"] == "step.output" for e in events):
            break
        time.sleep(0.2)
    status, body = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 200, body
    run = api.wait(run["id"], timeout=60)
    assert run["status"] == "cancelled", run
    step = next(s for s in run["steps"] if s["node_id"] == "py")
    assert step["status"] == "cancelled"
    assert "printed, never flushed" in step["stdout"], step
