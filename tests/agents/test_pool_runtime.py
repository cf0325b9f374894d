"""A session pool pinned to a runtime, end to end: a real stack (uvicorn, its own database) whose
web talks to a real process-driver sandbox service (bubblewrap) with two package layers on its
host, one of them active. Sessions of the default pool import the active runtime's packages;
sessions of a pool pinned to the other runtime import that one's and not the active one's, and
keep their state; once the pinned layer is gone from the host a new session says so."""
from __future__ import annotations

import shutil

import httpx
import pytest

from tests.engine.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.once]

Q = "api-version=2024-02-02-preview"


def _layer(cache, name: str, module: str) -> str:
    """A layer folder as the runtime builder leaves one (`layers/<id>/site`), with one module."""
    from sandbox.layers import layers_dir

    site = layers_dir(cache) / name / "site"
    site.mkdir(parents=True)
    (site / f"{module}.py").write_text(f"NAME = {module!r}\n")
    return str(site)


@pytest.fixture(scope="module")
def stack():
    from sandbox.layers import Layer, write_active_layer

    s = Stack(workers=0)
    try:
        host = s.host_env("host0")
        cache = s.dir / "host0" / "cache"   # the sandbox host's cache: the layers live there
        active_site, pinned_site = _layer(cache, "aaa", "only_active"), _layer(cache, "bbb", "only_pinned")
        ids = s.shell(
            "from runtimes.models import Runtime; from agents.models import SessionPool;"
            f"a = Runtime.objects.create(status='ready', layer_dir={active_site!r}, modules=['only_active'],"
            " active=True, image_id='aaa');"
            f"p = Runtime.objects.create(status='ready', layer_dir={pinned_site!r}, modules=['only_pinned'],"
            " image_id='bbb');"
            "SessionPool.objects.create(name='pinned', runtime=p);"
            "print(a.pk, p.pk)").split()
        s.runtime_ids = [int(i) for i in ids[-2:]]
        write_active_layer(cache, Layer(s.runtime_ids[0], cache / "layers" / "aaa" / "site", None, ("only_active",)))
        s.pinned_site = pinned_site
        s.start_sandbox("sandbox0", {**host, "SANDBOX_CACHE_DIR": str(cache)}, pool_size=2, driver="process")
        s.kill("web")
        s.env.update(host)
        s.start_web()
        s.key = s.shell(
            "from django.contrib.auth.models import User; from agents import actions;"
            "k, p = actions.create(User.objects.get(username='alice'), 'agent'); print(p)").strip().splitlines()[-1]
        yield s
    finally:
        s.close()


def _run(stack, pool: str, ident: str, code: str) -> dict:
    r = httpx.post(f"{stack.base}/api/sessionpools/{pool}/code/execute?identifier={ident}&{Q}", timeout=120,
                   headers={"Authorization": f"Bearer {stack.key}"},
                   json={"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}})
    assert r.status_code == 200, r.text
    return r.json()["properties"]


def test_a_pinned_pool_runs_its_runtime_and_the_default_pool_the_active_one(stack):
    out = _run(stack, "default", "d1", "import only_active\nonly_active.NAME")
    assert out["status"] == "Success" and out["result"] == "only_active", out
    out = _run(stack, "default", "d1", "import only_pinned")
    assert out["status"] == "Failure" and "No module named 'only_pinned'" in out["stderr"], out

    out = _run(stack, "pinned", "p1", "import only_pinned\nx = only_pinned.NAME\nx")
    assert out["status"] == "Success" and out["result"] == "only_pinned", out
    out = _run(stack, "pinned", "p1", "import only_active")
    assert out["status"] == "Failure" and "No module named 'only_active'" in out["stderr"], out
    out = _run(stack, "pinned", "p1", "x.upper()")   # the same session: its state survived
    assert out["status"] == "Success" and out["result"] == "ONLY_PINNED", out

    # the audit names the runtime each execution ran on
    ran_on = stack.shell("from governance.audit import AuditEvent;"
                         "print(sorted({(e.payload['inputs']['pool'], e.payload['runtime_id'])"
                         " for e in AuditEvent.objects.filter(kind='execution')}))").strip().splitlines()[-1]
    assert ran_on == str([("default", stack.runtime_ids[0]), ("pinned", stack.runtime_ids[1])]), ran_on


def test_a_new_session_on_a_pinned_layer_gone_from_the_host_says_so(stack):
    r = httpx.delete(f"{stack.base}/api/sessionpools/default/session?identifier=d1&{Q}",
                     headers={"Authorization": f"Bearer {stack.key}"})   # room under the key's session limit
    assert r.status_code in (200, 204), r.text
    shutil.rmtree(stack.pinned_site)
    out = _run(stack, "pinned", "p2", "1 + 1")
    assert out["status"] == "Failure", out
    assert f"the layer of runtime #{stack.runtime_ids[1]} is not on this sandbox host" in out["stderr"], out
