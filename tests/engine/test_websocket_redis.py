"""With REDIS_URL, the worker pushes events through channels-redis (and the consumer still
dedupes against the table). Uses REDIS_URL when set, else starts a redis-server of its own;
skipped where redis-server is not installed."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture
def redis_url(tmp_path):
    if os.environ.get("REDIS_URL"):  # scripts/test.sh's Redis (the stack takes a database of its own)
        yield os.environ["REDIS_URL"]
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_events_arrive_through_redis_once_each(private_stack, redis_url, wf):
    from websockets.sync.client import connect

    stack = private_stack(workers=1, env={"REDIS_URL": redis_url})
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"), wf.node("c", "action.compose", {"value": 1})],
        [wf.edge("trigger", "c")]))
    key = stack.session_key("alice")
    url = f"ws://127.0.0.1:{stack.port}/ws/workflows/{w['id']}/"
    with connect(url, additional_headers={"Cookie": f"sessionid={key}", "Origin": stack.base}) as ws:
        api.start(w["id"])
        events = []
        while True:
            e = json.loads(ws.recv(timeout=20))
            events.append(e)
            if e["type"] == "run.status" and e["status"] == "succeeded":
                break
    assert "could not push" not in (stack.dir / "worker0.log").read_text()
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))  # each event once
    assert [(e["node_id"], e["status"]) for e in events] == [
        (None, "queued"), (None, "running"), ("trigger", "running"), ("trigger", "succeeded"),
        ("c", "running"), ("c", "succeeded"), (None, "succeeded")]
