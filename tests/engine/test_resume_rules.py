"""The resume rules of engine/resume.py, in process on the test database: the reaper's decision
(resume, or fail "worker lost"), and what the resumed execution takes from the records the lost
worker left (the killed-process versions are in test_run_worker_death.py)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from designer.actions import do_create_workflow
from engine.actions import do_start_run, trigger_payload
from engine.executor import execute_run
from engine.models import Run, StepEvent, StepRun
from engine.resume import reap_lost_runs
from engine.states import begin, transition
from engine.status import Status


def _node(node_id, type_, parameters=None, **extra):
    return {"id": node_id, "type": type_, "name": node_id, "parameters": parameters or {},
            "position": {"x": 0, "y": 0}, **extra}


def _edge(a, b):
    return {"id": f"{a}-{b}", "source": a, "source_port": "out", "target": b, "target_port": "in"}


def _lost_run(user, nodes, edges, records, payload=None):
    """A run that a worker was executing when it died: running, lease expired, with `records`
    [(node_id, node_type, status, attempt, output[, item_index or "outer.inner" path])] left behind."""
    wf = do_create_workflow(user, "lost", definition={"version": 1, "nodes": nodes, "edges": edges,
                                                      "settings": {"variables": [], "allowed_hosts": []}})
    run = do_start_run(wf, trigger_payload(payload or {}))
    assert transition(run, Status.RUNNING, worker="gone:1:1", lease_expires=timezone.now() - timedelta(seconds=1))
    for node_id, node_type, status, attempt, output, *item in records:
        path = str(item[0]).split(".") if item else []   # an item index, or "outer.inner"
        step = begin(StepRun, Status.RUNNING, run=run, node_id=node_id, node_type=node_type, attempt=attempt,
                     item_index=int(path[-1]) if path else None, item_path=".".join(path))
        if status != Status.RUNNING:
            transition(step, status, output=output)
    return run


@pytest.mark.django_db(transaction=True)
def test_a_resumed_run_reuses_its_records_and_stores_a_reply_the_lost_worker_had_not(alice):
    reply = {"status": 200, "headers": {}, "body": {"ok": True}}
    run = _lost_run(alice, [_node("hook", "trigger.http", {"method": "POST"}),
                            _node("reply", "action.response", {"body": {"ok": True}})],
                    [_edge("hook", "reply")],
                    [("hook", "trigger.http", Status.SUCCEEDED, 1, {"body": {}}),
                     ("reply", "action.response", Status.SUCCEEDED, 1, reply)])
    assert reap_lost_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.QUEUED and run.worker == "" and run.lease_expires is None
    event = StepEvent.objects.filter(run=run, step__isnull=True).last()
    assert event.status == Status.QUEUED and event.data["resumed"] and event.data["lost_worker"] == "gone:1:1"
    assert reap_lost_runs() == []                      # nothing left to reap
    assert execute_run(run.pk) == Status.SUCCEEDED
    run.refresh_from_db()
    assert run.response == reply                       # died between the step and the reply: stored now
    assert StepRun.objects.filter(run=run).count() == 2   # nothing ran again


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_code_step_without_retries_fails_the_run(alice):
    run = _lost_run(alice, [_node("t", "trigger.manual"), _node("p", "action.python", {"code": "pass"})],
                    [_edge("t", "p")],
                    [("t", "trigger.manual", Status.SUCCEEDED, 1, {}), ("p", "action.python", Status.RUNNING, 1, None)])
    assert reap_lost_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.FAILED and "step 'p': worker lost" in run.error
    assert list(StepRun.objects.filter(run=run, node_id="p").values_list("status", "error")) == [
        ("failed", "worker lost")]


@pytest.mark.django_db(transaction=True)
def test_the_retry_policy_and_the_resume_cap_decide(alice, settings):
    nodes = [_node("t", "trigger.manual"),
             _node("p", "action.python", {"code": "result = 5"}, retry={"max_attempts": 2})]
    # attempt 1 was cut: attempt 2 is allowed, and the resumed run records it as attempt 2
    run = _lost_run(alice, nodes, [_edge("t", "p")],
                    [("t", "trigger.manual", Status.SUCCEEDED, 1, {}), ("p", "action.python", Status.RUNNING, 1, None)])
    assert reap_lost_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.QUEUED
    # attempt 2 cut as well: no attempt left
    assert transition(run, Status.RUNNING, worker="gone:2:2", lease_expires=timezone.now() - timedelta(seconds=1))
    begin(StepRun, Status.RUNNING, run=run, node_id="p", node_type="action.python", attempt=2)
    assert reap_lost_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.FAILED and "'p': worker lost" in run.error
    # a run lost between steps resumes at most STEPWELL_MAX_RUN_RESUMES times
    settings.STEPWELL_MAX_RUN_RESUMES = 0
    run = _lost_run(alice, nodes, [_edge("t", "p")], [("t", "trigger.manual", Status.SUCCEEDED, 1, {})])
    assert reap_lost_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.FAILED and "STEPWELL_MAX_RUN_RESUMES" in run.error


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_for_each_keeps_its_finished_items(alice):
    """Items 0 and 1 finished (their records say "A0", "A1", which the step would not compute),
    item 2 was running: the loop runs again as attempt 2, reusing items 0 and 1."""
    nodes = [_node("t", "trigger.manual"), _node("loop", "control.foreach", {"items": "{{ trigger.body.items }}"}),
             _node("sq", "action.compose", {"value": "{{ item }}"}),
             _node("after", "action.compose", {"value": "{{ steps.loop.output }}"})]
    edges = [_edge("t", "loop"), {"id": "e-each", "source": "loop", "source_port": "each", "target": "sq",
                                  "target_port": "in"},
             {"id": "e-done", "source": "loop", "source_port": "done", "target": "after", "target_port": "in"}]
    run = _lost_run(alice, nodes, edges,
                    [("t", "trigger.manual", Status.SUCCEEDED, 1, {}),
                     ("loop", "control.foreach", Status.RUNNING, 1, None),
                     ("sq", "action.compose", Status.SUCCEEDED, 1, "A0", 0),
                     ("sq", "action.compose", Status.SUCCEEDED, 1, "A1", 1),
                     ("sq", "action.compose", Status.RUNNING, 1, None, 2)], payload={"items": [1, 2, 3]})
    assert reap_lost_runs() == [run.pk]
    assert execute_run(run.pk) == Status.SUCCEEDED
    steps = list(StepRun.objects.filter(run=run).order_by("id").values_list("node_id", "item_index", "attempt",
                                                                               "status", "output"))
    assert [s for s in steps if s[0] == "sq"] == [("sq", 0, 1, "succeeded", "A0"), ("sq", 1, 1, "succeeded", "A1"),
                                                  ("sq", 2, 1, "failed", None), ("sq", 2, 2, "succeeded", 3)]
    assert [s[2:4] for s in steps if s[0] == "loop"] == [(1, "failed"), (2, "succeeded")]
    assert [s[4] for s in steps if s[0] == "after"] == [["A0", "A1", 3]]
    assert [s[0] for s in steps].count("t") == 1


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_nested_for_each_keeps_the_finished_items_of_its_inner_loops(alice):
    """Outer item 0 finished whole; in outer item 1, inner item 0 finished and inner item 1 was
    running. The records say "A00", "A01", "A10", which the step would not compute: the resumed
    run reuses all three and runs only inner item 1 of outer item 1 again. (One item at a time:
    the in-memory test database refuses concurrent writers with "table is locked".)"""
    nodes = [_node("t", "trigger.manual"),
             _node("outer", "control.foreach", {"items": "{{ trigger.body.rows }}", "concurrency": 1}),
             _node("inner", "control.foreach", {"items": "{{ item }}", "concurrency": 1}),
             _node("sq", "action.compose", {"value": "{{ item }}"}),
             _node("after", "action.compose", {"value": "{{ steps.outer.output }}"})]
    edges = [_edge("t", "outer"),
             {"id": "e-outer", "source": "outer", "source_port": "each", "target": "inner", "target_port": "in"},
             {"id": "e-inner", "source": "inner", "source_port": "each", "target": "sq", "target_port": "in"},
             {"id": "e-done", "source": "outer", "source_port": "done", "target": "after", "target_port": "in"}]
    run = _lost_run(alice, nodes, edges,
                    [("t", "trigger.manual", Status.SUCCEEDED, 1, {}),
                     ("outer", "control.foreach", Status.RUNNING, 1, None),
                     ("sq", "action.compose", Status.SUCCEEDED, 1, "A00", "0.0"),
                     ("sq", "action.compose", Status.SUCCEEDED, 1, "A01", "0.1"),
                     ("inner", "control.foreach", Status.SUCCEEDED, 1, ["A00", "A01"], 0),
                     ("inner", "control.foreach", Status.RUNNING, 1, None, 1),
                     ("sq", "action.compose", Status.SUCCEEDED, 1, "A10", "1.0"),
                     ("sq", "action.compose", Status.RUNNING, 1, None, "1.1")],
                    payload={"rows": [[1, 2], [3, 4]]})
    assert reap_lost_runs() == [run.pk]
    assert execute_run(run.pk) == Status.SUCCEEDED, Run.objects.get(pk=run.pk).error
    steps = list(StepRun.objects.filter(run=run).order_by("id").values_list("node_id", "item_path", "attempt",
                                                                               "status", "output"))
    assert [s for s in steps if s[0] == "sq"] == [
        ("sq", "0.0", 1, "succeeded", "A00"), ("sq", "0.1", 1, "succeeded", "A01"),
        ("sq", "1.0", 1, "succeeded", "A10"), ("sq", "1.1", 1, "failed", None), ("sq", "1.1", 2, "succeeded", 4)]
    assert [s[1:4] for s in steps if s[0] == "inner"] == [("0", 1, "succeeded"), ("1", 1, "failed"),
                                                          ("1", 2, "succeeded")]
    assert [s[4] for s in steps if s[0] == "after"] == [[["A00", "A01"], ["A10", 4]]]


@pytest.mark.django_db
def test_a_run_whose_claim_was_lost_before_it_started_is_queued_again(alice, settings):
    """A worker claimed the run's task and died before the run became running (no lease to
    expire): once the claim is older than a lease, the reaper fails that task and queues the run
    again; the run then executes once."""
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    settings.STEPWELL_RUN_LEASE_S = 2
    wf = do_create_workflow(alice, "claimed", definition={
        "version": 1, "nodes": [_node("start", "trigger.manual")], "edges": [],
        "settings": {"variables": [], "allowed_hosts": []}})
    run = do_start_run(wf, trigger_payload({}))
    task = DBTaskResult.objects.get(args_kwargs__args=[run.pk])
    task.claim("dead:1:1")
    assert reap_lost_runs() == []   # a fresh claim: its worker may still be starting it
    DBTaskResult.objects.filter(pk=task.pk).update(started_at=timezone.now() - timedelta(seconds=3))
    assert reap_lost_runs() == [run.pk]
    assert DBTaskResult.objects.get(pk=task.pk).status == TaskResultStatus.FAILED
    again = DBTaskResult.objects.get(args_kwargs__args=[run.pk], status=TaskResultStatus.READY)
    assert reap_lost_runs() == []   # queued again already
    assert execute_run(*again.args_kwargs["args"]) == Status.SUCCEEDED
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
