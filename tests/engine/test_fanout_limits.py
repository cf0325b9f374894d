"""Fan-out bounds (issue 10, finding 7): one thread pool per run for every For each item and
branch at every depth, For each nesting depth (at save and at run), step records per run, runs
per user at once (API and hooks), retry back-off capped."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest

from tests.engine.conftest import Stack


class Gauge:
    """Counts the requests a loopback server holds at once (each one waits `hold_s`) and the
    paths it was asked for (a shared stack may run another test's workflow against a port this
    server reuses: only paths carrying the test's own token are its run's calls)."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self.lock = threading.Lock()
        self.now = self.peak = self.total = 0
        self.paths: Counter = Counter()

    def __call__(self, request):
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
            self.paths[request.path] += 1
        try:
            time.sleep(self.hold_s)
        finally:
            with self.lock:
                self.now -= 1
        return None


def _nested(wf, depth: int, leaf: dict, items=10, concurrency: int = 4, **settings):
    """trigger -> loop1 -(each)-> loop2 ... -(each)-> leaf; loop d runs over `items` items (or
    items[d-1] when a list)."""
    nodes = [wf.node("trigger", "trigger.manual")]
    edges = []
    prev, port = "trigger", "out"
    for d in range(1, depth + 1):
        nodes.append(wf.node(f"loop{d}", "control.foreach",
                             {"items": list(range(items if isinstance(items, int) else items[d - 1])),
                              "concurrency": concurrency}))
        edges.append(wf.edge(prev, f"loop{d}", port))
        prev, port = f"loop{d}", "each"
    nodes.append(leaf)
    edges.append(wf.edge(prev, leaf["id"], port))
    return wf.definition(nodes, edges, **settings)


@pytest.mark.once
def test_nested_loops_share_one_bounded_pool(loopback_stack, wf, http_server):
    """3 deep, 10 x 10 x 3 items = 300 HTTP calls (10 x 10 x 10 works the same, in three minutes of
    database writes); each loop asks for 4 at a time, so threads per level would hold 4 x 4 x 3
    = 48 calls at once. One pool of STEPWELL_RUN_THREADS (8) threads plus the run's own thread
    holds at most 9."""
    gauge = Gauge(0.05)
    srv = http_server(gauge)
    token = uuid.uuid4().hex
    leaf = wf.node("call", "action.http", {"method": "GET", "url": srv.url(f"/leaf/{token}?i={{{{ index }}}}")})
    d = _nested(wf, 3, leaf, items=[10, 10, 3], allowed_hosts=[srv.netloc])
    api = loopback_stack.api()
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"], timeout=240)
    assert run["status"] == "succeeded", run["error"]
    calls = [s for s in run["steps"] if s["node_id"] == "call"]
    ours = {p: n for p, n in gauge.paths.items() if p.startswith(f"/leaf/{token}?")}
    _, events = api.get(f"/api/runs/{run['id']}/events/")
    resumed = [e for e in (events["results"] if isinstance(events, dict) else events)
               if (e.get("data") or {}).get("resumed")]
    assert (len(calls), sum(ours.values())) == (300, 300), (
        f"{len(calls)} call step records, {sum(ours.values())} requests of this run, "
        f"{gauge.total - sum(ours.values())} other requests ({dict(gauge.paths - Counter(ours))}); "
        f"resumed: {resumed}; per item: {Counter(ours.values())}")
    assert ours == {f"/leaf/{token}?i={i}": 100 for i in range(3)}
    assert 2 <= gauge.peak <= 9, f"{gauge.peak} calls at once"
    outer = next(s for s in run["steps"] if s["node_id"] == "loop1")
    assert len(outer["output"]) == 10 and len(outer["output"][0]) == 10 and len(outer["output"][0][0]) == 3


def test_nesting_deeper_than_the_limit_is_refused_at_save(stack, wf):
    api = stack.api()
    d = _nested(wf, 5, wf.node("leaf", "action.compose", {"value": 1}), items=1)
    status, body = api.post("/api/workflows/", {"name": "deep", "definition": d})
    assert status == 400, body
    problems = {e["path"]: e["message"] for e in body["errors"]}
    assert problems == {"$.definition.nodes[5]": "For each 'loop5' is nested 5 deep; the limit is 4 "
                                                 "(STEPWELL_MAX_FOREACH_DEPTH)"}, body
    d = _nested(wf, 4, wf.node("leaf", "action.compose", {"value": 1}), items=2)
    run = api.wait(api.start(api.create_workflow(d)["id"])["id"], timeout=60)
    assert run["status"] == "succeeded", run["error"]


@pytest.fixture(scope="module")
def capped_stack():
    """A stack with small caps: 40 step records per run, 2 active runs per user, 1 s back-off."""
    s = Stack(env={"STEPWELL_MAX_STEPS_PER_RUN": "40", "STEPWELL_MAX_ACTIVE_RUNS_PER_USER": "2",
                   "STEPWELL_MAX_RETRY_DELAY_S": "1",
                   "STEPWELL_RUN_LEASE_S": "30"})   # a loaded test machine must not reap these runs
    yield s
    s.close()


def test_a_run_past_the_steps_cap_fails_clearly(capped_stack, wf):
    api = capped_stack.api()
    d = _nested(wf, 2, wf.node("leaf", "action.compose", {"value": "{{ index }}"}), items=10)
    run = api.wait(api.start(api.create_workflow(d)["id"])["id"], timeout=60)
    assert run["status"] == "failed", run
    assert run["error"] == ("the run reached the limit of 40 steps (STEPWELL_MAX_STEPS_PER_RUN); "
                            "nothing more was started"), run["error"]
    assert len(run["steps"]) == 40
    assert not any(s["status"] in ("running", "queued") for s in run["steps"])


def test_the_runs_per_user_cap_refuses_the_next_start(capped_stack, wf):
    api, other = capped_stack.api(), capped_stack.api("bob")
    sleeper = wf.definition(
        [wf.node("trigger", "trigger.http", {"method": "POST"}),
         wf.node("sleep", "action.python", {"code": "import time\ntime.sleep(60)"})],
        [wf.edge("trigger", "sleep")])
    w = api.create_workflow(sleeper)
    runs = [api.start(w["id"]) for _ in range(2)]
    try:
        status, body = api.post(f"/api/workflows/{w['id']}/runs/", {"payload": {}})
        assert status == 429, body
        assert "too many runs at once" in body["detail"] and "limit 2" in body["detail"], body
        # the hook of the same owner's workflow: 429 with Retry-After, and no run is created
        status, token = api.get(f"/api/workflows/{w['id']}/hook/")
        assert status == 200, token
        code, content, headers = api.call("POST", f"/hooks/{token['token']}/", {}, raw=True)
        assert code == 429, content
        assert int(headers["Retry-After"]) > 0
        status, listed = api.get(f"/api/workflows/{w['id']}/runs/")
        assert len(listed["results"] if isinstance(listed, dict) else listed) == 2
        # another user is not affected
        w2 = other.create_workflow(sleeper)
        r2 = other.start(w2["id"])
        other.post(f"/api/runs/{r2['id']}/cancel/")
    finally:
        for r in runs:
            api.post(f"/api/runs/{r['id']}/cancel/")
    for r in runs:
        api.wait(r["id"], timeout=30)
    # room again once they ended
    run = api.start(w["id"])
    api.post(f"/api/runs/{run['id']}/cancel/")


def test_retry_back_off_is_capped(capped_stack, wf):
    """backoff_s=3600 would wait an hour per attempt; STEPWELL_MAX_RETRY_DELAY_S=1 caps each wait."""
    api = capped_stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("boom", "action.http", {"method": "GET", "url": "http://not-listed.invalid/"},
                 retry={"max_attempts": 3, "backoff_s": 3600, "backoff_factor": 10})],
        [wf.edge("trigger", "boom")])
    t0 = time.monotonic()
    run = api.wait(api.start(api.create_workflow(d)["id"])["id"], timeout=30)
    assert run["status"] == "failed", run
    assert [s["attempt"] for s in run["steps"] if s["node_id"] == "boom"] == [1, 2, 3]
    assert time.monotonic() - t0 < 15
