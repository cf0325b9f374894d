"""Statuses: a closed set, one transition function, frozen finished records, append-only events."""
import pytest

from designer.actions import do_create_workflow
from engine.actions import do_cancel_run, do_start_run, trigger_payload
from engine.models import ImmutableError, StepEvent, StepRun
from engine.states import begin, transition
from engine.status import ALLOWED, TERMINAL, Status, TransitionError


def test_the_status_set_is_closed_and_terminal_states_lead_nowhere():
    assert set(Status.values) == {"queued", "running", "succeeded", "failed", "cancelled", "timed_out", "skipped"}
    assert all(t not in ALLOWED for t in TERMINAL)


@pytest.mark.django_db
def test_transitions_follow_the_rules_and_append_events(alice, definition):
    run = do_start_run(do_create_workflow(alice, "s", definition=definition), trigger_payload({}))
    assert transition(run, Status.RUNNING) and run.started is not None
    step = begin(StepRun, Status.RUNNING, run=run, node_id="python_1", node_type="action.python")
    assert transition(step, Status.SUCCEEDED, output={"n": 1})
    assert not transition(step, Status.FAILED, expect=Status.RUNNING)  # already finished: no-op
    with pytest.raises(TransitionError):
        transition(step, Status.RUNNING, expect=Status.SUCCEEDED)
    step.refresh_from_db()
    assert step.status == "succeeded" and step.output == {"n": 1} and step.finished is not None
    step.output = {"n": 2}
    with pytest.raises(ImmutableError):
        step.save()
    assert transition(run, Status.SUCCEEDED)
    with pytest.raises(ImmutableError):
        run.save()
    events = list(StepEvent.objects.filter(run=run).values_list("node_id", "status"))
    assert events == [("", "queued"), ("", "running"), ("python_1", "running"), ("python_1", "succeeded"),
                      ("", "succeeded")]
    with pytest.raises(ImmutableError):
        StepEvent.objects.first().save()


@pytest.mark.django_db
def test_cancelling_a_queued_run_finishes_it(alice, definition):
    run = do_start_run(do_create_workflow(alice, "s", definition=definition), trigger_payload({}))
    run = do_cancel_run(run)
    assert run.status == "cancelled" and run.cancel_requested and run.finished is not None
    assert not transition(run, Status.RUNNING, expect=Status.QUEUED)  # a late worker cannot claim it
