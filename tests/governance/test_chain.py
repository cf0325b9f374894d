"""The audit chain: append-only through the ORM, verified by audit_verify, broken by a direct SQL
edit or a removed row, and still verifiable after retention pruning (checkpoint event)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from governance import actions
from governance.audit import AppendOnlyError, AuditChainHead, AuditEvent, append_many, canonical_json
from governance.chain import prune, verify

pytestmark = pytest.mark.django_db


def _events(n: int = 5):
    return [actions.record("workflow.saved", actor="alice", workflow=7, payload={"i": i, "name": "é"})
            for i in range(n)]


def _verify_output() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_events_chain_and_verify():
    events = _events()
    assert events[0].prev_hash == ""
    for a, b in zip(events, events[1:]):
        assert b.prev_hash == a.hash and b.id == a.id + 1
    stored = AuditEvent.objects.get(pk=events[2].id)
    assert stored.hash == stored.compute_hash()
    assert "5 events verified" in _verify_output()
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (events[-1].id, events[-1].hash)


def test_canonical_json_is_sorted_compact_and_utf8():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_a_direct_sql_edit_breaks_the_chain_and_names_the_event():
    events = _events()
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET payload = %s WHERE id = %s", ['{"i": 99, "name": "é"}', events[3].id])
    with pytest.raises(CommandError, match=rf"event #{events[3].id} \(workflow.saved\) does not match its hash"):
        call_command("audit_verify")


def test_a_row_removed_with_sql_breaks_the_chain():
    events = _events()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[1].id])
    verdict = verify()
    assert not verdict.ok and verdict.bad_event == events[2].id


def test_the_orm_refuses_updates_and_deletes():
    event = _events(1)[0]
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.get(pk=event.pk).delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    stored.actor = "mallory"
    with pytest.raises(AppendOnlyError):
        stored.save()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([stored], ["actor"])
    assert AuditEvent.objects.get(pk=event.pk).actor == "alice"
    assert "1 events verified" in _verify_output()


def test_pruning_leaves_a_checkpoint_and_the_chain_verifies():
    old = timezone.now() - timedelta(days=400)
    append_many({"kind": "run.started", "actor": "alice", "payload": {"i": i}, "created": old + timedelta(seconds=i)}
                for i in range(10))
    recent = _events(3)
    last_old = AuditEvent.objects.get(pk=10)
    assert prune(retention_days=365) == 10
    assert list(AuditEvent.objects.values_list("id", flat=True)) == [r.id for r in recent] + [14]
    checkpoint = AuditEvent.objects.get(pk=14)
    assert checkpoint.kind == "checkpoint" and checkpoint.payload["continues_from"] == last_old.hash
    assert checkpoint.payload["pruned_through"] == 10 and checkpoint.payload["deleted"] == 10
    assert "4 events verified" in _verify_output()
    # removing the first remaining event is still detected: the checkpoint says where the chain starts
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [recent[0].id])
    with pytest.raises(CommandError, match=f"event #{recent[1].id} does not follow"):
        call_command("audit_verify")


def test_prune_with_nothing_old_deletes_nothing():
    _events(2)
    assert prune(retention_days=1) == 0
    assert AuditEvent.objects.count() == 2


def test_execution_event_trims_and_keeps_code_by_setting(settings):
    settings.STEPWELL_AUDIT_MAX_FIELD_BYTES = 300
    settings.STEPWELL_AUDIT_KEEP_CODE = "full"
    meta = {"driver": "process", "exit_code": 0, "duration_ms": 12.5, "timeout_s": 5, "memory_mib": 256,
            "runtime_id": 3, "egress": [{"host": "api.example.com", "port": 443, "allowed": False}]}
    e = actions.record_execution(code="print('x' * 1000)", inputs={"a": 1}, output={"big": "y" * 1000},
                                 stdout="x" * 1000, stderr="", status="succeeded", sandbox=meta, workflow=1,
                                 version=2, run=3, step=4, node_id="py", actor="alice", trigger="manual")
    p = e.payload
    assert p["code"] == "print('x' * 1000)" and len(p["code_sha256"]) == 64
    assert p["stdout"]["truncated"] is True and p["stdout"]["bytes"] == 1000 and len(p["stdout"]["preview"]) == 300
    assert p["output"]["truncated"] is True and p["inputs"] == {"a": 1}
    assert p["driver"] == "process" and p["runtime_id"] == 3 and p["egress"][0]["host"] == "api.example.com"
    assert p["limits"] == {"timeout_s": 5, "memory_mib": 256}
    settings.STEPWELL_AUDIT_KEEP_CODE = "hash"
    e2 = actions.record_execution(code="secret_algorithm()", inputs={}, output=None, stdout="", stderr="",
                                  status="failed", sandbox={})
    assert "code" not in e2.payload and e2.payload["egress"] == []
    assert "secret_algorithm" not in canonical_json(e2.payload)
    assert "2 events verified" in _verify_output()


@pytest.mark.parametrize("value, ok", [("full", True), ("HASH", True), ("none", False), ("yes", False)])
def test_keep_code_setting_is_parsed_strictly(value, ok):
    import os
    import subprocess
    import sys

    env = {**os.environ, "STEPWELL_AUDIT_KEEP_CODE": value, "DJANGO_SETTINGS_MODULE": "designer.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
                          "print(settings.STEPWELL_AUDIT_KEEP_CODE)"], env=env, capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[2]))
    if ok:
        assert out.returncode == 0 and out.stdout.strip() == value.lower()
    else:
        assert out.returncode != 0 and "STEPWELL_AUDIT_KEEP_CODE must be full or hash" in out.stderr


def test_payloads_are_stored_as_they_read_back():
    event = actions.record("execution", payload={"nan": float("nan"), "inf": float("-inf"), "big": 1e16,
                                                 "f": 0.1, "t": (1, 2), 3: "int key"})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.payload == {"nan": "nan", "inf": "-inf", "big": 10**16, "f": 0.1, "t": [1, 2], "3": "int key"}
    assert stored.compute_hash() == stored.hash == event.hash
