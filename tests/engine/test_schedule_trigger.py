"""Schedule triggers: one run per due time, even with several schedulers running."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from designer.actions import do_create_workflow
from engine.models import WorkflowVersion
from engine.actions import do_start_due_schedules, due_time
from engine.models import Run, ScheduleTick


def _scheduled(wf, cron="*/5 * * * *"):
    return wf.definition([wf.node("tick", "trigger.schedule", {"cron": cron}),
                          wf.node("note", "action.compose", {"value": "{{ trigger.scheduled_for }}"})],
                         [wf.edge("tick", "note")])


def test_due_time_is_the_latest_cron_time():
    now = timezone.now().replace(hour=10, minute=7, second=30, microsecond=0)
    assert due_time("*/5 * * * *", None, now) == now.replace(minute=5, second=0)
    assert due_time("*/5 * * * *", None, now.replace(minute=10, second=0)) == now.replace(minute=10, second=0)


@pytest.mark.django_db(transaction=True)
def test_each_due_time_starts_one_run(alice, wf):
    w = do_create_workflow(alice, "sched", definition=_scheduled(wf))
    WorkflowVersion.objects.filter(pk=w.head_id).update(created=timezone.now() - timedelta(hours=1))
    w.refresh_from_db()
    now = timezone.now()
    first = do_start_due_schedules(now)
    again = do_start_due_schedules(now + timedelta(seconds=1))  # a second scheduler, same due time
    assert len(first) == 1 and again == []
    assert Run.objects.filter(workflow=w, trigger="schedule").count() == 1
    assert ScheduleTick.objects.get(workflow=w).run == first[0]
    assert first[0].payload["scheduled_for"] == due_time("*/5 * * * *", None, now).isoformat()


@pytest.mark.django_db(transaction=True)
def test_it_does_not_fire_before_the_version_existed(alice, wf):
    do_create_workflow(alice, "sched", definition=_scheduled(wf, "0 0 1 1 *"))
    assert do_start_due_schedules() == []


@pytest.mark.once
def test_two_workers_start_each_due_run_once(private_stack, wf):
    stack = private_stack(workers=2)
    api = stack.api()
    w = api.create_workflow(_scheduled(wf, "* * * * *"))
    stack.shell("from engine.models import WorkflowVersion; from django.utils import timezone;"
                "from datetime import timedelta;"
                f"WorkflowVersion.objects.filter(workflow_id={w['id']}).update("
                "created=timezone.now() - timedelta(minutes=5))")
    deadline = time.monotonic() + 15
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = api.get(f"/api/workflows/{w['id']}/runs/")[1]["results"]
        time.sleep(0.2)
    assert runs, "no scheduled run started"
    time.sleep(1.5)  # several more scheduler passes in both workers
    runs = api.get(f"/api/workflows/{w['id']}/runs/")[1]["results"]
    dues = [api.wait(r["id"])["payload"]["scheduled_for"] for r in runs]
    assert len(dues) == len(set(dues)) and all(r["trigger"] == "schedule" for r in runs)
    assert 1 <= len(runs) <= 2  # 2 only if a minute boundary passed meanwhile
