"""Secrets against the real stack (uvicorn + worker, process sandbox, SQLite file): a secret
printed by code, returned in a result, written to a file, sent in an HTTP header and raised in an
error reaches the code and the server, yet its value (plain, base64 and URL-encoded) is nowhere in
the database file nor in any API response of the run; rotating the key keeps secrets readable."""
from __future__ import annotations

import base64
import os
import secrets as pysecrets
import stat
import subprocess
from urllib.parse import quote, quote_plus

import pytest

from tests.engine.conftest import loopback_stack, wf  # noqa: F401 - fixtures
from tests.helpers.httpserver import Reply

CODE = '''import base64, os, urllib.parse
v = os.environ["API_TOKEN"]
print("token:", v)
print("b64:", base64.b64encode(v.encode()).decode())
print("url:", urllib.parse.quote(v, safe=""))
print("basic:", base64.b64encode(("user:" + v).encode()).decode())
open("/mnt/data/leak.txt", "w").write("file " + v)
result = {"token": v, "upper": v.upper(), "n": 1}
'''
RAISE = 'import os\nraise ValueError("bad " + os.environ["API_TOKEN"])\n'


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw),
            quote(value, safe="").encode(), quote_plus(value).encode(), base64.b64encode(b"user:" + raw)]


def db_bytes(stack) -> bytes:
    """Everything the stack's database holds: the raw SQLite file (and its WAL), or on PostgreSQL
    a full plain-text dump (bytea columns appear there as hex, so `assert_absent` looks for that too)."""
    url = stack.env.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return subprocess.run(["pg_dump", "--data-only", url], capture_output=True, check=True).stdout
    stack.shell("from django.db import connection; c=connection.cursor(); c.execute('PRAGMA wal_checkpoint(FULL)')")
    return b"".join((stack.dir / n).read_bytes() for n in os.listdir(stack.dir) if n.startswith("db.sqlite3"))


def assert_absent(blob: bytes, value: str, where: str) -> None:
    for form in forms(value):
        assert form not in blob, f"{where} holds the secret (as {form!r})"
        assert form.hex().encode() not in blob, f"{where} holds the secret (as the hex of {form!r})"


def _secret(api, name: str, value: str) -> dict:
    status, body = api.post("/api/secrets/", {"name": name, "value": value})
    assert status == 201, body
    return body


@pytest.fixture(scope="module")
def leaky_run(loopback_stack, http_server_module):  # noqa: F811
    """One run whose code and HTTP call use the secret in every way, and what the server saw."""
    stack = loopback_stack
    api = stack.api("alice")
    value = "sv-" + pysecrets.token_urlsafe(18) + "/+ &="   # URL-encoding and base64 both differ
    body = _secret(api, "API_TOKEN", value)
    assert "value" not in body and value not in str(body)
    srv = http_server_module
    from tests.engine.conftest import definition, edge, node

    stack.shell("from governance.policies import load; p = load(); "   # the instance lets workflows list it
                f"p.egress_ceiling = sorted(set(p.egress_ceiling) | {{{srv.netloc!r}}}); p.save()")

    d = definition(
        [node("trigger", "trigger.manual"),
         node("code", "action.python", {"code": CODE, "inputs": {}}),
         node("call", "action.http", {"method": "POST", "url": srv.url("/hook"),
                                      "headers": {"X-Token": "{{ secrets.API_TOKEN }}",
                                                  "Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                                      "body": {"from": "{{ steps.code.output.n }}"}}),
         node("boom", "action.python", {"code": RAISE, "inputs": {}})],
        [edge("trigger", "code"), edge("code", "call"), edge("call", "boom")],
        allowed_hosts=[srv.netloc], secrets=["API_TOKEN"])
    w = api.create_workflow(d, name="leaky")
    run = api.wait(api.start(w["id"])["id"], timeout=90)
    return {"stack": stack, "api": api, "value": value, "run": run, "workflow": w, "server": srv}


@pytest.fixture(scope="module")
def http_server_module():
    from tests.helpers.httpserver import LoopbackServer

    def answer(req):
        return Reply(200, {"seen_token": req.headers.get("X-Token"), "auth": req.headers.get("Authorization")})

    srv = LoopbackServer(answer)
    yield srv
    srv.close()


def test_the_secret_reaches_code_and_the_server(leaky_run):
    run, value, srv = leaky_run["run"], leaky_run["value"], leaky_run["server"]
    assert run["status"] == "failed", run
    steps = {s["node_id"]: s for s in run["steps"]}
    assert steps["code"]["status"] == "succeeded", steps["code"]
    assert steps["call"]["status"] == "succeeded", steps["call"]
    assert steps["boom"]["status"] == "failed"
    [req] = srv.requests
    assert req.headers.get("X-Token") == value
    assert req.headers.get("Authorization") == f"Bearer {value}"
    # what was stored is masked, and the HTTP call's inputs keep the template
    assert "token: ***API_TOKEN***" in steps["code"]["stdout"]
    assert "b64: ***API_TOKEN***" in steps["code"]["stdout"]
    assert "url: ***API_TOKEN***" in steps["code"]["stdout"]
    assert steps["code"]["output"]["token"] == "***API_TOKEN***"
    assert steps["call"]["inputs"]["headers"]["X-Token"] == "{{ secrets.API_TOKEN }}"
    assert steps["call"]["output"]["body"]["seen_token"] == "***API_TOKEN***"
    assert "***API_TOKEN***" in steps["boom"]["error"] and "***API_TOKEN***" in run["error"]


def test_the_value_is_in_no_api_response(leaky_run):
    api, value, run, w = leaky_run["api"], leaky_run["value"], leaky_run["run"], leaky_run["workflow"]
    paths = [f"/api/runs/{run['id']}/", f"/api/runs/{run['id']}/events/", f"/api/workflows/{w['id']}/runs/",
             f"/api/workflows/{w['id']}/", f"/api/workflows/{w['id']}/export/",
             f"/api/workflows/{w['id']}/versions/1/", f"/api/workflows/{w['id']}/schemas/", "/api/secrets/",
             "/api/usage/?group_by=workflow"]
    code_step = next(s for s in run["steps"] if s["node_id"] == "code")
    paths.append(f"/api/runs/{run['id']}/steps/{code_step['id']}/files/leak.txt")
    for path in paths:
        status, content, _ = api.get(path, raw=True)
        assert status == 200, (path, status, content[:300])
        assert_absent(content, value, path)
    status, content, _ = api.get(f"/api/runs/{run['id']}/steps/{code_step['id']}/files/leak.txt", raw=True)
    assert content == b"file ***API_TOKEN***"
    status, body = api.get("/api/secrets/")
    row = next(r for r in body if r["name"] == "API_TOKEN")
    assert set(row) == {"name", "created", "updated", "workflows"} and row["workflows"] == [w["id"]]


def test_the_value_is_nowhere_in_the_database_file(leaky_run):
    stack, value = leaky_run["stack"], leaky_run["value"]
    blob = db_bytes(stack)
    assert_absent(blob, value, "the database file")
    assert b"***API_TOKEN***" in blob      # the masked forms were stored (so the search read real rows)
    assert b"secret.created" in blob and b"API_TOKEN" in blob
    for log in stack.dir.glob("*.log"):      # nor in what the web and worker processes logged
        assert_absent(log.read_bytes(), value, log.name)


def test_owner_only_and_write_only(loopback_stack):  # noqa: F811
    alice, bob = loopback_stack.api("alice"), loopback_stack.api("bob")
    _secret(alice, "ONLY_ALICE", "alice-private-value-123")
    for method, body in (("PUT", {"value": "x"}), ("DELETE", None)):
        status, _ = bob.call(method, "/api/secrets/ONLY_ALICE/", body)
        assert status == 404
    assert all(r["name"] != "ONLY_ALICE" for r in bob.get("/api/secrets/")[1])
    status, body = alice.call("PUT", "/api/secrets/ONLY_ALICE/", {"value": "new-alice-value-456"})
    assert status == 200 and "value" not in body and "new-alice-value" not in str(body)
    status, body = alice.post("/api/secrets/", {"name": "lower_case", "value": "v"})
    assert status == 400 and body["errors"][0]["path"] == "$.name", body
    status, body = alice.post("/api/secrets/", {"name": "ONLY_ALICE", "value": "v"})
    assert status == 400, body
    assert alice.call("DELETE", "/api/secrets/ONLY_ALICE/")[0] == 204
    assert alice.call("DELETE", "/api/secrets/ONLY_ALICE/")[0] == 404


def test_a_workflow_naming_an_unknown_secret_is_refused(loopback_stack, wf):  # noqa: F811
    api = loopback_stack.api("bob")
    d = wf.definition([wf.node("trigger", "trigger.manual")], [], secrets=["NOT_MINE"])
    status, body = api.post("/api/workflows/", {"name": "x", "definition": d})
    assert status == 400, body
    assert body["errors"][0]["path"] == "$.definition.settings.secrets[0]", body
    d = wf.definition([wf.node("trigger", "trigger.manual"),
                       wf.node("code", "action.python", {"code": "pass", "inputs": {"t": "{{ secrets.X }}"}})],
                      [wf.edge("trigger", "code")])
    status, body = api.post("/api/workflows/", {"name": "x", "definition": d})
    assert status == 400 and body["errors"][0]["path"] == "$.definition.nodes[1].parameters.inputs.t", body


def test_rotating_the_key_keeps_secrets_readable(loopback_stack, wf):  # noqa: F811
    stack = loopback_stack
    api = stack.api("alice")
    _secret(api, "ROTATED", "rotated-value-789")
    key_file = stack.dir / "secrets_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    before_keys = key_file.read_text().split()
    read = ("from governance.models import Secret; s=Secret.objects.get(name='ROTATED');"
            "print(s.ciphertext); print(s.reveal())")
    token_before, plain_before = stack.shell(read).split()[-2:]
    out = stack.manage("secrets_rotate_key")
    assert "re-encrypted" in out
    after_keys = key_file.read_text().split()
    assert len(after_keys) == 1 and after_keys[0] not in before_keys
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token_after, plain_after = stack.shell(read).split()[-2:]
    assert plain_before == plain_after == "rotated-value-789" and token_after != token_before
    # the running worker reads the new key file too: a code step still gets the value
    d = wf.definition([wf.node("trigger", "trigger.manual"),
                       wf.node("code", "action.python", {"code": 'import os\nresult = os.environ["ROTATED"][::-1]'})],
                      [wf.edge("trigger", "code")], secrets=["ROTATED"])
    w = api.create_workflow(d, name="rotated")
    run = api.wait(api.start(w["id"])["id"], timeout=60)
    assert run["status"] == "succeeded", run
    assert run["steps"][-1]["output"] == "rotated-value-789"[::-1]


def test_a_deleted_or_unreadable_secret_fails_the_step_clearly(loopback_stack, wf):  # noqa: F811
    from cryptography.fernet import Fernet

    stack = loopback_stack
    api = stack.api("alice")
    _secret(api, "SHORT_LIVED", "short-lived-value-1")
    d = wf.definition([wf.node("trigger", "trigger.manual"),
                       wf.node("code", "action.python", {"code": 'import os\nresult = os.environ["SHORT_LIVED"]'})],
                      [wf.edge("trigger", "code")], secrets=["SHORT_LIVED"])
    w = api.create_workflow(d, name="short-lived")
    key_file = stack.dir / "secrets_key"
    saved = key_file.read_bytes()
    try:   # a key file that is not the one the secrets were stored with
        tmp = stack.dir / "secrets_key.new"
        tmp.write_text(Fernet.generate_key().decode() + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, key_file)
        run = api.wait(api.start(w["id"])["id"], timeout=60)
        assert run["status"] == "failed" and "cannot be decrypted" in run["steps"][-1]["error"], run
    finally:
        tmp = stack.dir / "secrets_key.old"
        tmp.write_bytes(saved)
        os.chmod(tmp, 0o600)
        os.replace(tmp, key_file)
    assert api.call("DELETE", "/api/secrets/SHORT_LIVED/")[0] == 204
    run = api.wait(api.start(w["id"])["id"], timeout=60)
    assert run["status"] == "failed", run
    assert "SHORT_LIVED" in run["steps"][-1]["error"] and "no longer exist" in run["steps"][-1]["error"]
