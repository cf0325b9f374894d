"""A run whose worker dies is taken over by another worker once its lease expires (2 s in these
stacks) and resumed from its last finished step (engine/resume.py): finished steps are not run
again, the interrupted step is retried when its node allows it, else the run fails with "worker
lost"; the interrupted sandbox execution does not outlive the worker. The same for a sandbox
service killed during an execution: the execution ends in error and the step's retry policy
decides; the restarted service sweeps what the dead one left."""
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.httpserver import Reply

CGROUPS = Path("/sys/fs/cgroup/pids/stepwell")


def counting_server(http_server, block_first: str):
    """A loopback server that counts hits per path; the first hit on `block_first` hangs until
    the test ends (its worker is killed meanwhile), later ones answer at once."""
    release = threading.Event()

    def answer(req):
        path = req.path.split("?")[0]
        if path == block_first and sum(r.path.split("?")[0] == path for r in srv.requests) == 1:
            release.wait(60)
        return Reply(200, {"path": path})

    srv = http_server(answer)
    return srv, release


def hits(srv, path: str) -> int:
    return sum(r.path.split("?")[0] == path for r in srv.requests)


def steps_of(run, node_id):
    return [(s["attempt"], s["status"]) for s in run["steps"] if s["node_id"] == node_id]


def a_b_c(wf, srv, b_retry=None):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("A", "action.http", {"method": "GET", "url": srv.url("/A")}),
         wf.node("B", "action.http", {"method": "GET", "url": srv.url("/B"), "timeout_s": 30},
                 **({"retry": b_retry} if b_retry else {})),
         wf.node("C", "action.http", {"method": "GET", "url": srv.url("/C")})],
        [wf.edge("trigger", "A"), wf.edge("A", "B"), wf.edge("B", "C")], allowed_hosts=[srv.netloc])


LOOPBACK = {"STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32"}


@pytest.mark.once
def test_a_killed_workers_run_resumes_from_its_last_finished_step(private_stack, wf, http_server):
    srv, release = counting_server(http_server, "/B")
    stack = private_stack(workers=1, env=LOOPBACK)
    api = stack.api()
    w = api.create_workflow(a_b_c(wf, srv, {"max_attempts": 2, "backoff_s": 30}))
    run = api.start(w["id"])
    srv.wait_for(2)   # A answered, B hangs
    api.wait(run["id"], until=lambda r: ("B", "running") in [(s["node_id"], s["status"]) for s in r["steps"]])
    stack.kill("worker0")  # SIGKILL: no chance to clean up
    time.sleep(0.5)
    assert api.get(f"/api/runs/{run['id']}/")[1]["status"] == "running"
    stack.start_worker("worker1")  # its reaper notices the expired lease and resumes the run
    run = api.wait(run["id"], timeout=60)
    release.set()
    assert run["status"] == "succeeded", run
    assert (hits(srv, "/A"), hits(srv, "/B"), hits(srv, "/C")) == (1, 2, 1)
    assert steps_of(run, "A") == [(1, "succeeded")]     # reused, not recorded again
    assert steps_of(run, "B") == [(1, "failed"), (2, "succeeded")]   # retried at once (no backoff)
    assert steps_of(run, "C") == [(1, "succeeded")]
    lost = [s for s in run["steps"] if s["node_id"] == "B" and s["attempt"] == 1][0]
    assert lost["error"] == "worker lost"
    status, events = api.get(f"/api/runs/{run['id']}/events/")
    resumed = [e for e in events if not e["node_id"] and e["status"] == "queued" and e["data"].get("resumed")]
    assert len(resumed) == 1 and resumed[0]["data"]["interrupted"] == ["B"]


@pytest.mark.once
def test_without_retries_the_interrupted_step_fails_with_worker_lost(private_stack, wf, http_server):
    """B allows no retry: the run fails "worker lost"; C never runs; the code step's sandbox
    processes died with the worker, and the next driver start sweeps their cgroups."""
    srv, release = counting_server(http_server, "/never")
    stack = private_stack(workers=1, env=LOOPBACK)
    api = stack.api()
    d = a_b_c(wf, srv)
    d["nodes"][2] = wf.node("B", "action.python", {"code": "import time\nprint('up', flush=True)\ntime.sleep(120)",
                                                   "timeout_s": 150})
    w = api.create_workflow(d)
    run = api.start(w["id"])
    api.wait(run["id"], timeout=60, until=lambda r: any(
        s["node_id"] == "B" and s["status"] == "running" for s in r["steps"]))
    dead = stack.procs["worker0"].pid
    deadline = time.monotonic() + 60   # the sandbox is up (its cgroup has tasks)
    while not any((d / "cgroup.procs").read_text().split() for d in CGROUPS.glob(f"{dead}-*")):
        assert time.monotonic() < deadline, "the code step's sandbox never started"
        time.sleep(0.1)
    stack.kill("worker0")
    deadline = time.monotonic() + 15   # bubblewrap dies with its parent: no process is left
    while any((d / "cgroup.procs").read_text().split() for d in CGROUPS.glob(f"{dead}-*")):
        assert time.monotonic() < deadline, "the sandbox outlived its worker"
        time.sleep(0.1)
    stack.start_worker("worker1")
    run = api.wait(run["id"], timeout=60)
    release.set()
    assert run["status"] == "failed"
    assert "'B': worker lost" in run["error"] and "stopped renewing its lease" in run["error"]
    assert steps_of(run, "B") == [(1, "failed")]
    assert [s["error"] for s in run["steps"] if s["node_id"] == "B"] == ["worker lost"]
    assert (hits(srv, "/A"), hits(srv, "/C")) == (1, 0)
    # the new worker still runs new work, and its sandbox driver swept the dead one's cgroups
    w2 = api.create_workflow(wf.definition([wf.node("trigger", "trigger.manual"),
                                            wf.node("p", "action.python", {"code": "print(1)"})],
                                           [wf.edge("trigger", "p")]))
    assert api.wait(api.start(w2["id"])["id"], timeout=60)["status"] == "succeeded"
    assert not list(CGROUPS.glob(f"{dead}-*"))


def host_with_service(private_stack):
    """A stack whose one worker uses its host's sandbox service (as deployed): (stack, host env, api)."""
    stack = private_stack(workers=0)
    host = stack.host_env("host0")
    stack.start_sandbox("sandbox0", host)
    stack.start_worker("worker0", env=host)
    return stack, host, stack.api()


def wait_for_execution_in_service(stack) -> int:
    """Until the service runs an execution (a process in one of its cgroups); the service's pid."""
    svc_pid = stack.procs["sandbox0"].pid
    deadline = time.monotonic() + 60
    while not any((d / "cgroup.procs").read_text().split() for d in CGROUPS.glob(f"{svc_pid}-*")):
        assert time.monotonic() < deadline, "the execution never started in the service"
        time.sleep(0.1)
    return svc_pid


@pytest.mark.once
def test_a_killed_sandbox_service_fails_the_execution_and_the_step_retries(private_stack, wf):
    stack, host, api = host_with_service(private_stack)
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("B", "action.python", {"code": "import time\nprint('up', flush=True)\ntime.sleep(4)\nresult = 7"},
                 retry={"max_attempts": 3, "backoff_s": 5}),
         wf.node("C", "action.python", {"code": "result = inputs['b'] + 1", "inputs": {"b": "{{ steps.B.output }}"}})],
        [wf.edge("trigger", "B"), wf.edge("B", "C")]))
    run = api.start(w["id"])
    svc_pid = wait_for_execution_in_service(stack)
    stack.kill("sandbox0")
    stack.start_sandbox("sandbox0", host)   # sweeps what the dead service left
    assert not list(CGROUPS.glob(f"{svc_pid}-*"))
    run = api.wait(run["id"], timeout=90)
    assert run["status"] == "succeeded", run
    b = [s for s in run["steps"] if s["node_id"] == "B"]
    assert b[0]["status"] == "failed" and "sandbox" in b[0]["error"], b[0]
    assert b[-1]["status"] == "succeeded" and len(b) <= 3
    assert [s["output"] for s in run["steps"] if s["node_id"] == "C"] == [8]


@pytest.mark.once
def test_the_sandbox_service_stops_the_execution_of_a_killed_worker(private_stack, wf):
    """The worker talks to its host's sandbox service; killed, its connection closes and the
    service cancels the execution at once (sandbox/hangup.py) rather than letting it run on."""
    stack, host, api = host_with_service(private_stack)
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("B", "action.python", {"code": "import time\ntime.sleep(120)", "timeout_s": 150})],
        [wf.edge("trigger", "B")]))
    run = api.start(w["id"])
    svc_pid = wait_for_execution_in_service(stack)
    stack.kill("worker0")
    deadline = time.monotonic() + 20
    while list(CGROUPS.glob(f"{svc_pid}-*")):   # killed and its cgroups removed by the live service
        assert time.monotonic() < deadline, "the service kept running the dead worker's execution"
        time.sleep(0.1)
    assert stack.procs["sandbox0"].poll() is None
    stack.start_worker("worker1", env=host)
    run = api.wait(run["id"], timeout=60)
    assert run["status"] == "failed" and "'B': worker lost" in run["error"], run
