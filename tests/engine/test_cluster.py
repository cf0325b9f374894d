"""A loopback cluster under load (PostgreSQL only): 2 web processes (uvicorn), 3 "hosts" each
with its own sandbox service (process driver), run folder, wake socket and worker, 50 concurrent
callers of a synchronous hook. During the load one worker is killed with SIGKILL (its runs are
resumed by the others, engine/resume.py) and started again, and another is restarted with
SIGTERM. Every run must end succeeded, each step executed once (an attempt interrupted by the
kill may be retried: its record says "worker lost"), and the report prints runs/s and latency
percentiles.

STEPWELL_CLUSTER_RUNS sets the number of runs (default 300, bounded for CI; 1000 for the full
check), STEPWELL_CLUSTER_CALLERS the callers (default 50).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from tests.engine.conftest import Stack, _free_port

pytestmark = pytest.mark.cluster

RUNS = int(os.environ.get("STEPWELL_CLUSTER_RUNS", "300"))
CALLERS = int(os.environ.get("STEPWELL_CLUSTER_CALLERS", "50"))


@pytest.fixture
def cluster():
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("the cluster test runs on PostgreSQL only (several hosts share one database)")
    stack = Stack(workers=0, env={
        "STEPWELL_RUN_LEASE_S": "10",   # a loaded 2-core machine must not lose live workers' leases
        "STEPWELL_MAX_ACTIVE_RUNS_PER_USER": "100000",
        "STEPWELL_HOOK_RATE": "1000000/min", "STEPWELL_API_RATE": "1000000/min",
    })
    try:
        bases = [stack.base, stack.start_web("web1", _free_port())]
        hosts = [stack.host_env(f"host{i}") for i in range(3)]
        for i, env in enumerate(hosts):
            stack.start_sandbox(f"sandbox{i}", env, pool_size=2)
            stack.start_worker(f"worker{i}", env=env)
        yield stack, bases, hosts
    finally:
        stack.close()


def _db_rows(stack, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        return conn.execute(sql).fetchall()


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def test_a_loopback_cluster_loses_no_run_and_runs_none_twice(cluster, wf):
    stack, bases, hosts = cluster
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 90}),
         wf.node("A", "action.python", {"code": "import time\ntime.sleep(0.2)\nresult = inputs['i'] * 2",
                                        "inputs": {"i": "{{ trigger.body.i }}"}},
                 retry={"max_attempts": 3, "backoff_s": 0.5}),
         wf.node("reply", "action.response", {"body": {"v": "{{ steps.A.output }}"}})],
        [wf.edge("hook", "A"), wf.edge("A", "reply")]), name="cluster")
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]

    lock = threading.Lock()
    nxt = iter(range(RUNS))
    latencies: list[float] = []
    codes: Counter = Counter()
    wrong: list = []
    issued = [0]

    def caller(k: int):
        while True:
            with lock:
                i = next(nxt, None)
                if i is None:
                    return
                issued[0] += 1
            req = urllib.request.Request(f"{bases[i % 2]}/hooks/{token}/", data=json.dumps({"i": i}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=180) as resp:
                    code, body = resp.status, resp.read()
            except urllib.error.HTTPError as err:
                code, body = err.code, err.read()
            except OSError as exc:
                code, body = 0, repr(exc).encode()
            dt = time.monotonic() - t0
            with lock:
                codes[code] += 1
                latencies.append(dt)
                if code == 200 and json.loads(body) != {"v": i * 2}:
                    wrong.append((i, body[:200]))

    started = time.monotonic()
    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(CALLERS)]
    for t in threads:
        t.start()

    def when_answered(fraction: float):
        while len(latencies) < RUNS * fraction and any(t.is_alive() for t in threads):
            time.sleep(0.05)

    when_answered(0.2)
    dead = stack.procs["worker0"].pid
    stack.kill("worker0")                          # SIGKILL in the middle of runs
    running = _db_rows(stack, "SELECT count(*) FROM engine_run WHERE status = 'running' AND worker LIKE "
                              f"'%:{dead}:%'")[0][0]   # cut short: each must be resumed
    when_answered(0.4)
    stack.kill("worker2", signal.SIGTERM)          # a graceful restart: finishes its runs, comes back
    stack.start_worker("worker2", env=hosts[2])
    when_answered(0.6)
    stack.start_worker("worker0", env=hosts[0])    # the killed host comes back
    for t in threads:
        t.join(timeout=600)
    calls_done = time.monotonic()

    deadline = time.monotonic() + 180              # runs answered 503 (still queued) finish later
    while True:
        active = _db_rows(stack, f"SELECT count(*) FROM engine_run WHERE workflow_id = {w['id']} "
                                 "AND status IN ('queued', 'running')")[0][0]
        if not active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    statuses = dict(_db_rows(stack, f"SELECT status, count(*) FROM engine_run WHERE workflow_id = {w['id']} "
                                    "GROUP BY status"))
    steps = _db_rows(stack, "SELECT s.run_id, s.node_id, s.status, s.error FROM engine_steprun s "
                            f"JOIN engine_run r ON r.id = s.run_id WHERE r.workflow_id = {w['id']}")
    resumed = _db_rows(stack, "SELECT count(DISTINCT e.run_id) FROM engine_stepevent e JOIN engine_run r "
                              f"ON r.id = e.run_id WHERE r.workflow_id = {w['id']} AND e.step_id IS NULL "
                              "AND e.status = 'queued' AND e.data::jsonb ? 'resumed'")[0][0]

    succeeded = Counter((run, node) for run, node, status, _ in steps if status == "succeeded")
    others = Counter(error for _, _, status, error in steps if status != "succeeded")
    print(f"\ncluster: {RUNS} runs from {CALLERS} callers, 2 web, 3 workers + sandbox services: "
          f"{RUNS / (calls_done - started):.1f} runs/s answered, all terminal after {elapsed:.1f} s; "
          f"latency p50 {_pct(latencies, 50) * 1000:.0f} ms, p95 {_pct(latencies, 95) * 1000:.0f} ms, "
          f"p99 {_pct(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
          f"answers {dict(codes)}; runs {statuses}; {running} running on the killed worker, resumed {resumed}; "
          f"other step records {dict(others)}")

    assert sum(statuses.values()) == RUNS, statuses                  # one run per call, none lost
    bad = _db_rows(stack, "SELECT r.id, r.status, r.error, r.worker, (SELECT json_agg(json_build_array("
                          "e.node_id, e.status, e.attempt, e.data) ORDER BY e.id) FROM engine_stepevent e "
                          f"WHERE e.run_id = r.id) FROM engine_run r WHERE r.workflow_id = {w['id']} "
                          "AND r.status <> 'succeeded'")
    assert statuses == {"succeeded": RUNS}, (statuses, bad)         # every run ended, and well
    assert set(codes) <= {200, 503} and codes[200] >= RUNS * 0.5, codes
    assert not wrong, wrong[:5]
    runs = {run for run, _, _, _ in steps}
    assert len(runs) == RUNS
    for run in runs:                                                   # each step executed once
        for node in ("hook", "A", "reply"):
            assert succeeded[(run, node)] == 1, (run, node, [s for s in steps if s[0] == run])
    assert set(others) <= {"worker lost"}, others                      # only attempts the kill cut
    assert resumed >= running > 0   # the kill cut runs short, and every one was resumed
