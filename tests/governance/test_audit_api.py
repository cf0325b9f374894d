"""The staff audit API: filters, cursor pages, detail, read-only routes, and an export of 100,000
events streamed in bounded memory (through Django's ASGI handler, as uvicorn serves it)."""
from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from governance import actions
from governance.audit import AuditEvent, append_many

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(staff):
    c = Client()
    c.force_login(staff)
    return c


def test_list_filters_and_cursor_pages(staff_client):
    for i in range(7):
        actions.record("run.started", actor="alice", workflow=1, run=i)
    actions.record("package.added", actor="root", payload={"name": "numpy"})
    actions.record("package.removed", actor="root", payload={"name": "numpy"})
    r = staff_client.get("/api/audit/?kind=run.started&page_size=3")
    assert r.status_code == 200
    body = r.json()
    assert [e["run"] for e in body["results"]] == [6, 5, 4]
    seen = [e["id"] for e in body["results"]]
    while body["next"]:
        body = staff_client.get(body["next"]).json()
        seen += [e["id"] for e in body["results"]]
    assert len(seen) == 7 == len(set(seen))
    kinds = [e["kind"] for e in staff_client.get("/api/audit/?kind=package.*").json()["results"]]
    assert kinds == ["package.removed", "package.added"]
    assert staff_client.get("/api/audit/?actor=root&kind=run.started").json()["results"] == []
    assert staff_client.get("/api/audit/?since=2999-01-01").json()["results"] == []
    assert staff_client.get("/api/audit/?until=2999-01-01&workflow=1").json()["results"][0]["kind"] == "run.started"
    assert staff_client.get("/api/audit/?since=yesterday").status_code == 400
    one = AuditEvent.objects.first()
    detail = staff_client.get(f"/api/audit/{one.id}/").json()
    assert detail["hash"] == one.hash and detail["prev_hash"] == ""


def test_no_write_routes_and_staff_only(staff_client, alice):
    event = actions.record("login", actor="alice")
    for method in ("post", "put", "patch", "delete"):
        assert getattr(staff_client, method)(f"/api/audit/{event.id}/", {}, content_type="application/json").status_code == 405
        assert getattr(staff_client, method)("/api/audit/", {}, content_type="application/json").status_code == 405
    assert AuditEvent.objects.get(pk=event.id).hash == event.hash
    c = Client()
    c.force_login(alice)
    for url in ("/api/audit/", f"/api/audit/{event.id}/", "/api/audit/export/?format=jsonl", "/api/policy/"):
        assert c.get(url).status_code == 403, url


def test_csv_export(staff_client):
    actions.record("workflow.saved", actor="alice", workflow=3, payload={"note": 'a "quoted", line\nbreak'})
    r = staff_client.get("/api/audit/export/?format=csv&workflow=3")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert len(rows) == 1 and json.loads(rows[0]["payload"]) == {"note": 'a "quoted", line\nbreak'}
    assert staff_client.get("/api/audit/export/?format=xml").status_code == 400


@pytest.mark.once
def test_export_streams_100k_events_in_bounded_memory(staff):
    n = 100_000
    append_many({"kind": "execution", "actor": "alice", "workflow": i % 50, "run": i,
                 "payload": {"node_id": "py", "stdout": "x" * 200, "i": i}} for i in range(n))
    last = AuditEvent.objects.order_by("-id").first()

    async def scenario():
        client = AsyncClient()
        await client.aforce_login(staff)
        tracemalloc.start()
        try:
            response = await client.get("/api/audit/export/?format=jsonl&kind=execution")  # not the login
            assert response.status_code == 200 and response.streaming
            lines, size, tail = 0, 0, b""
            async for chunk in response.streaming_content:
                lines += chunk.count(b"\n")
                size += len(chunk)
                tail = (tail + chunk)[-2000:]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return lines, size, tail, peak

    lines, size, tail, peak = async_to_sync(scenario)()
    print(f"exported {lines} events, {size / 1e6:.1f} MB, tracemalloc peak {peak / 1e6:.1f} MB")
    assert lines == n
    assert size > 25_000_000                      # the whole table went through ...
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"   # ... without holding it
    assert json.loads(tail.decode().strip().splitlines()[-1])["hash"] == last.hash
