"""Deleting a workflow deletes its runs (and their steps, events and files)."""
import pytest

from designer.actions import do_create_workflow
from engine.actions import do_start_run, trigger_payload
from engine.models import Run, StepEvent


@pytest.mark.django_db
def test_it_deletes_runs_with_their_workflow(alice, definition):
    wf = do_create_workflow(alice, "d", definition=definition)
    do_start_run(wf, trigger_payload({}))
    wf.delete()
    assert Run.objects.count() == 0 and StepEvent.objects.count() == 0
