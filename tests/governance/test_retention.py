"""Retention applied by the worker's hourly call (governance.chain.prune_if_due): the policy's
output retention clears old steps' outputs, logs and files; the audit retention prunes old events
behind a checkpoint, and the chain still verifies."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance import chain
from governance.audit import AuditEvent, append_many
from governance.policies import Policy

pytestmark = pytest.mark.django_db


def test_prune_if_due_applies_output_and_audit_retention(alice, definition, settings):
    from designer.actions import do_create_workflow
    from engine.models import Run, StepFile, StepRun

    settings.STEPWELL_AUDIT_RETENTION_DAYS = 30
    Policy.objects.create(pk=1, output_retention_days=7)
    now = timezone.now()
    append_many({"kind": "run.started", "payload": {"i": i}, "created": now - timedelta(days=40)} for i in range(5))
    wf = do_create_workflow(alice, "kept", "", definition)
    run = Run.objects.create(workflow=wf, version=wf.head, payload={}, status="succeeded")
    old = StepRun.objects.create(run=run, node_id="python_1", node_type="action.python", status="succeeded",
                                 inputs={"a": 1}, output={"n": 1}, stdout="out", stderr="err",
                                 files=[{"name": "f.txt", "size": 1, "truncated": False}],
                                 sandbox={"driver": "process"}, finished=now - timedelta(days=8))
    StepFile.objects.create(step=old, name="f.txt", size=1, content=b"x")
    new = StepRun.objects.create(run=run, node_id="python_1", node_type="action.python", status="succeeded",
                                 output={"n": 2}, stdout="fresh", finished=now - timedelta(days=1))
    chain._last_prune = None
    assert chain.prune_if_due(now_monotonic=1000.0) == 5
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.inputs, old.output, old.stdout, old.stderr, old.files) == (None, None, "", "", [])
    assert old.sandbox == {"driver": "process"} and not StepFile.objects.filter(step=old).exists()
    assert new.output == {"n": 2} and new.stdout == "fresh"
    kinds = list(AuditEvent.objects.values_list("kind", flat=True))
    assert "retention.outputs" in kinds and kinds[-1] == "checkpoint" and "run.started" not in kinds
    assert chain.verify().ok
    assert chain.prune_if_due(now_monotonic=1000.0 + 60) == 0      # not again within the hour
