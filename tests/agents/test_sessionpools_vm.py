"""The code-interpreter session API end to end: a real stack (uvicorn, its own database) whose
web talks to a real libvirt sandbox service, driven over HTTP with httpx the way the Azure
dynamic sessions clients call it. State survives between calls, 42 comes back as the result,
a matplotlib figure as an image, files go up, are listed, read and deleted without touching
the user's names, shell commands run, another owner's identical identifier is another session,
a full pool answers 429 with Retry-After, idle sessions expire, DELETE session ends one, calls
on one session are serialised, and every execution is audited and metered for the key."""
from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import pytest

from tests.engine.conftest import Stack

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

Q = "api-version=2024-02-02-preview"
NAMES = "sorted(n for n in globals() if n != '__warningregistry__')"   # the user's names (warnings add that one)


def _key(stack: Stack, user: str, name: str = "agent") -> str:
    return stack.shell(
        "from django.contrib.auth.models import User; from agents import actions;"
        f"k, p = actions.create(User.objects.get(username={user!r}), {name!r}); print(p)").strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stack():
    s = Stack(workers=0)
    try:
        host = s.host_env("host0")
        s.start_sandbox("sandbox0", {**host, "SANDBOX_SESSION_MAX": "6"}, pool_size=2, driver="libvirt",
                        timeout=600)
        s.kill("web")
        s.env.update(host, SANDBOX_DRIVER="libvirt")
        s.start_web()
        s.shell("from agents.models import SessionPool;"
                "SessionPool.objects.create(name='tiny', max_sessions=1, cooldown_s=3, timeout_s=30)")
        s.keys = {"alice": _key(s, "alice"), "bob": _key(s, "bob")}
        yield s
    finally:
        s.close()


class Client:
    def __init__(self, stack: Stack, user: str, pool: str = "default"):
        self.http = httpx.Client(base_url=f"{stack.base}/api/sessionpools/{pool}/", timeout=180,
                                 headers={"Authorization": f"Bearer {stack.keys[user]}"})

    def run(self, ident: str, code: str, path: str = "code/execute", **props) -> httpx.Response:
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code, **props}}
        return self.http.post(f"{path}?identifier={ident}&{Q}", json=body)

    def props(self, ident: str, code: str, **kw) -> dict:
        r = self.run(ident, code, **kw)
        assert r.status_code == 200, r.text
        return r.json()["properties"]


def test_a_python_session_over_http(stack):
    alice, bob = Client(stack, "alice"), Client(stack, "bob")
    first = alice.props("s1", "x = 6 * 7\nprint('hi')")
    assert (first["status"], first["stdout"], first["result"]) == ("Success", "hi\n", ""), first
    p = alice.props("s1", "x")
    assert (p["status"], p["result"], p["executionResult"]) == ("Success", 42, 42)
    assert isinstance(p["executionTimeInMilliseconds"], int)
    assert alice.props("s1", "x + 1", path="code/execute/")["result"] == 43     # SK's trailing slash
    assert alice.props("s1", "x + 2", path="python/execute")["result"] == 44    # older clients
    err = alice.props("s1", "1 / 0")
    assert err["status"] == "Failure" and "ZeroDivisionError" in err["stderr"]
    assert alice.props("s1", "x")["result"] == 42                                # the error kept the state

    img = alice.props("s1", "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    assert img["result"]["type"] == "image" and img["result"]["format"] == "png"
    assert base64.b64decode(img["result"]["base64_data"]).startswith(b"\x89PNG")

    names_before = alice.props("s1", NAMES)["result"]
    assert "x" in names_before and "plt" in names_before
    # files: upload as Semantic Kernel and LangChain send it (field "file", a /mnt/data/ name or a plain one)
    q = f"identifier=s1&{Q}"
    r = alice.http.post(f"files/upload?{q}", files={"file": ("/mnt/data/data.csv", b"a,b\n1,2\n",
                                                                 "application/octet-stream")})
    assert r.status_code == 200, r.text
    (up,) = r.json()["value"]
    assert up["properties"]["filename"] == "data.csv" and up["properties"]["size"] == 8
    assert up["properties"]["lastModifiedTime"].endswith("Z")
    r = alice.http.post(f"files/upload?{q}", files=[("file", ("b.bin", bytes(range(256)), "application/octet-stream"))])
    assert r.status_code == 200 and r.json()["value"][0]["properties"]["size"] == 256
    assert alice.props("s1", "open('/mnt/data/data.csv').read()")["result"] == "a,b\n1,2\n"
    listed = alice.http.get(f"files?{q}").json()["value"]
    names = {f["properties"]["filename"]: f["properties"]["size"] for f in listed}
    assert names["data.csv"] == 8 and names["b.bin"] == 256 and "figure_1.png" in names
    assert {f["name"] for f in listed} == set(names)                              # the newer API's shape too
    r = alice.http.get(f"files/content/b.bin?{q}")
    assert r.status_code == 200 and r.content == bytes(range(256))
    assert alice.http.get(f"files/data.csv/content?{q}").content == b"a,b\n1,2\n"
    assert alice.http.delete(f"files/data.csv?{q}").status_code == 204
    assert alice.http.get(f"files/content/data.csv?{q}").status_code == 404
    assert alice.http.delete(f"files/data.csv?{q}").status_code == 404
    assert "data.csv" not in {f["properties"]["filename"] for f in alice.http.get(f"files?{q}").json()["value"]}
    # the file operations left no name in the user's namespace
    assert alice.props("s1", NAMES)["result"] == names_before
    # a shell command (newer api-version, as LangChain's SessionsBashTool sends it)
    r = alice.http.post("executions?identifier=s1&api-version=2025-02-02-preview",
                        json={"shellCommand": "echo from-shell && ls /mnt/data"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "0" and "from-shell" in body["result"]["stdout"] and "b.bin" in body["result"]["stdout"]
    r = alice.http.post("executions?identifier=s1&api-version=2025-02-02-preview",
                        json={"codeInputType": "Inline", "executionType": "Synchronous", "code": "x"})
    assert r.json()["status"] == "Succeeded" and r.json()["result"]["executionResult"] == 42

    # bob's identical identifier is another session: none of alice's names or files
    b = bob.props("s1", "x")
    assert b["status"] == "Failure" and "NameError" in b["stderr"]
    assert bob.http.get(f"files?{q}").json()["value"] == []
    assert bob.http.get(f"files/content/b.bin?{q}").status_code == 404

    # ending the session: the next call starts a fresh one
    assert alice.http.delete(f"session?identifier=s1&api-version=2025-10-02-preview").status_code == 204
    fresh = alice.props("s1", "x")
    assert fresh["status"] == "Failure" and "NameError" in fresh["stderr"]

    # audited as the key's actor, metered for the key
    out = stack.shell(
        "from governance.audit import AuditEvent; from agents.models import KeyUsage;"
        "print(AuditEvent.objects.filter(kind='execution', actor='alice/agent').count(),"
        " AuditEvent.objects.filter(kind='execution', actor='bob/agent').count(),"
        " KeyUsage.objects.filter(key__user__username='alice').count())").split()
    assert int(out[0]) >= 15 and int(out[1]) == 3 and int(out[2]) == int(out[0])


def test_bad_keys_pool_limits_idle_expiry_and_serialised_calls(stack):
    r = httpx.post(f"{stack.base}/api/sessionpools/default/code/execute?identifier=s&{Q}",
                   json={"properties": {"code": "1"}})
    assert r.status_code == 401
    r = httpx.post(f"{stack.base}/api/sessionpools/default/code/execute?identifier=s&{Q}",
                   json={"properties": {"code": "1"}}, headers={"Authorization": "Bearer sw_nope"})
    assert r.status_code == 401

    tiny = Client(stack, "alice", pool="tiny")
    assert tiny.props("t1", "y = 1\ny")["result"] == 1
    started = time.monotonic()
    r = tiny.run("t2", "1")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 3, r.text
    assert time.monotonic() - started < 5                                        # never hangs
    time.sleep(3.3)                                                              # t1 idles past cooldown_s
    assert tiny.props("t2", "z = 2\nz")["result"] == 2                           # t1 counted as ended
    time.sleep(3.3)
    again = tiny.props("t2", "z")                                                # idle: a fresh session
    assert again["status"] == "Failure" and "NameError" in again["stderr"]

    # two calls at once on one session run one after the other
    results = []
    code = "import time\nt0 = time.time()\ntime.sleep(1)\n(t0, time.time())"
    threads = [threading.Thread(target=lambda: results.append(tiny.props("t2", code)["result"])) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(results)
    assert b0 >= a1 - 0.05, results


def test_langchain_tools_over_plain_http(stack):
    """LangChain's SessionsPythonREPLTool and SessionsBashTool as they are (the HTTPS and
    Semantic Kernel tests are in test_session_clients.py)."""
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_azure_dynamic_sessions import SessionsBashTool, SessionsPythonREPLTool

    endpoint = f"{stack.base}/api/sessionpools/default/"
    plain = _key(stack, "alice", "langchain")   # a key of its own: each key holds 2 sessions at most
    token = lambda: plain  # noqa: E731
    py = SessionsPythonREPLTool(pool_management_endpoint=endpoint, access_token_provider=token, session_id="lc-1")
    py.execute("n = 40")
    out = json.loads(py.invoke("n + 2"))
    assert out["result"] == 42 and out["stderr"] == ""
    meta = py.upload_file(data=io.BytesIO(b"hello"), remote_file_path="h.txt")
    assert (meta.filename, meta.size_in_bytes) == ("h.txt", 5)
    assert [(f.filename, f.size_in_bytes) for f in py.list_files()] == [("h.txt", 5)]
    assert py.download_file(remote_file_path="h.txt").read() == b"hello"
    py._delete_session_sync("lc-1")                                   # DELETE session?identifier=
    assert "NameError" in json.loads(py.invoke("n"))["stderr"]

    bash = SessionsBashTool(pool_management_endpoint=endpoint, access_token_provider=token, session_id="lc-2")
    meta = bash.upload_file(data=io.BytesIO(b"abc"), remote_file_path="b.txt")
    assert (meta.filename, meta.size_in_bytes) == ("b.txt", 3)
    out = json.loads(bash.invoke("cat b.txt && exit 3"))
    assert out == {"stdout": "abc", "stderr": "", "exitCode": 3}
    assert [(f.filename, f.size_in_bytes) for f in bash.list_files()] == [("b.txt", 3)]
    assert bash.download_file(remote_file_path="b.txt").read() == b"abc"
