"""Several hosts: a run enqueued by a web process wakes a worker of another host at once. The
worker here listens on a wake socket the web process does not know (as on another machine) and
polls only every 60 s, so only PostgreSQL's NOTIFY can start the run quickly."""
import os
import time

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
                                reason="LISTEN/NOTIFY needs PostgreSQL (the PostgreSQL run of make test)")


def test_a_worker_on_another_host_is_woken_by_notify(private_stack, wf):
    stack = private_stack(workers=0)
    stack.start_worker("far-worker", "--wake-socket", str(stack.dir / "other-host-wake.sock"), "--interval", "60")
    time.sleep(1.0)   # its claim loops made their first pass and sleep now
    api = stack.api()
    w = api.create_workflow(wf.definition([wf.node("trigger", "trigger.manual")], []))
    took = []
    for _ in range(3):
        t0 = time.monotonic()
        run = api.wait(api.start(w["id"])["id"], timeout=45)
        took.append(time.monotonic() - t0)
        assert run["status"] == "succeeded", run
    assert max(took) < 20, took   # a missed wake-up would wait for the 60 s poll
