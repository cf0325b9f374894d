"""Metering against the real stack: each code-step execution leaves one usage row, and the usage
API's totals (per workflow, user and day; own rows, staff everyone) match the executions the runs
report, with the cost at STEPWELL_PRICE_PER_SESSION_SECOND and no minimum billed time."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.engine.conftest import Api, private_stack, wf  # noqa: F401 - fixtures

PRICE = "0.000123"


def _flow(wf, n_steps: int):  # noqa: F811
    nodes = [wf.node("trigger", "trigger.manual")]
    edges = []
    prev = "trigger"
    for i in range(n_steps):
        nodes.append(wf.node(f"s{i}", "action.python", {"code": f"x = bytearray({i + 1} * 1024 * 1024)\nresult = {i}"}))
        edges.append(wf.edge(prev, f"s{i}"))
        prev = f"s{i}"
    return wf.definition(nodes, edges)


def _executions(api, run_ids):
    steps = []
    for rid in run_ids:
        run = api.wait(rid, timeout=60)
        assert run["status"] == "succeeded", (run["error"], [(s["node_id"], s["error"]) for s in run["steps"]])
        steps += [s for s in run["steps"] if s["node_type"] == "action.python"]
    return steps


@pytest.fixture(scope="module")
def metered(tmp_path_factory):
    from tests.engine.conftest import Stack

    stack = Stack(env={"STEPWELL_PRICE_PER_SESSION_SECOND": PRICE})
    carol = stack.shell(
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
        "u=User.objects.create_user('carol', password='pw-carol-123', is_staff=True);"
        "print(Token.objects.create(user=u).key)").strip().splitlines()[-1]
    yield stack, Api(stack.base, carol)
    stack.close()


def test_usage_totals_match_the_executions(metered, wf):  # noqa: F811
    stack, staff = metered
    alice, bob = stack.api("alice"), stack.api("bob")
    wa = alice.create_workflow(_flow(wf, 2), name="two steps")
    wb = bob.create_workflow(_flow(wf, 1), name="one step")
    a_runs = [alice.start(wa["id"])["id"] for _ in range(2)]
    b_runs = [bob.start(wb["id"])["id"]]
    a_steps, b_steps = _executions(alice, a_runs), _executions(bob, b_runs)
    assert len(a_steps) == 4 and len(b_steps) == 1
    a_session = sum(s["sandbox"]["session_s"] for s in a_steps)
    b_session = sum(s["sandbox"]["session_s"] for s in b_steps)
    assert all(s["sandbox"]["session_s"] * 1000 >= s["sandbox"]["duration_ms"] for s in a_steps + b_steps)

    status, body = alice.get("/api/usage/?group_by=workflow")
    assert status == 200, body
    assert [g["key"] for g in body["groups"]] == [wa["id"]]            # her rows only
    [group] = body["groups"]
    assert group["executions"] == 4
    assert group["session_s"] == pytest.approx(a_session, abs=1e-5)
    assert body["total"]["session_s"] == pytest.approx(a_session, abs=1e-5)
    assert body["price_per_session_second"] == PRICE
    cost = Decimal(body["total"]["cost"])
    assert abs(cost - Decimal(repr(a_session)) * Decimal(PRICE)) < Decimal("1e-9")
    assert cost > 0
    peak = [s["sandbox"].get("memory_max_usage_bytes") for s in a_steps]
    if all(isinstance(p, int) for p in peak):
        assert group["peak_memory_bytes"] == max(peak)
    assert group["egress_bytes"] == 0

    status, by_user = alice.get("/api/usage/?group_by=user")
    assert [g["key"] for g in by_user["groups"]] == ["alice"]
    status, by_day = alice.get("/api/usage/?group_by=day")
    assert sum(g["executions"] for g in by_day["groups"]) == 4
    assert by_day["total"]["session_s"] == pytest.approx(a_session, abs=1e-5)

    status, everyone = staff.get("/api/usage/?group_by=user")
    assert status == 200
    rows = {g["key"]: g for g in everyone["groups"]}
    assert set(rows) == {"alice", "bob"}
    assert rows["bob"]["executions"] == 1 and rows["bob"]["session_s"] == pytest.approx(b_session, abs=1e-5)
    assert everyone["total"]["session_s"] == pytest.approx(a_session + b_session, abs=1e-5)

    status, none = alice.get("/api/usage/?group_by=day&until=2000-01-01")
    assert status == 200 and none["total"]["executions"] == 0 and none["groups"] == []
    status, later = alice.get("/api/usage/?group_by=day&since=2000-01-01")
    assert later["total"]["executions"] == 4


def test_bad_parameters_are_refused(metered):
    stack, _ = metered
    alice = stack.api("alice")
    assert alice.get("/api/usage/?group_by=planet")[0] == 400
    status, body = alice.get("/api/usage/?since=yesterday")
    assert status == 400 and body["errors"][0]["path"] == "$.since", body
    assert stack.api(None).get("/api/usage/")[0] in (401, 403)


def test_a_bad_price_stops_the_server_from_starting(metered):
    stack, _ = metered
    import subprocess
    import sys

    for bad in ("1e-5", "0,5", "-1", "abc", "1_000"):
        out = subprocess.run([sys.executable, "manage.py", "check"], cwd=stack.env["PYTHONPATH"],
                             env={**stack.env, "STEPWELL_PRICE_PER_SESSION_SECOND": bad},
                             capture_output=True, text=True)
        assert out.returncode != 0 and "STEPWELL_PRICE_PER_SESSION_SECOND" in out.stderr, (bad, out.stderr[-300:])
