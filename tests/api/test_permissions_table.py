"""Every route and websocket, walked with a second user's objects.

The table below names each URL pattern of the project with who may reach it. The first test
fails when a route exists that the table does not name, so a new route cannot forget its
permission check; the others call every route with Bob's objects as Alice (a signed-in,
non-staff user) and expect 404 for objects she does not own and 403 for staff-only routes.
"""
from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")

# Who may reach each route (the route string as Django joins it):
#   owner  - an object of one user; every other user gets 404
#   staff  - staff only; a signed-in non-staff user gets 403 (or 404 for a staff object)
#   user   - any signed-in user, and only their own rows are listed or created
#   public - no sign-in needed (authenticated by something else, or harmless)
ROUTES: dict[str, str] = {
    "": "public",
    "login/": "public",
    "logout/": "public",
    "workflows/": "user",
    "workflows/<int:pk>/edit": "owner",
    "workflows/<int:pk>/runs": "owner",
    "runs/<int:pk>/": "owner",
    "hooks/<str:token>/": "public",          # the token is the credential
    "healthz": "public",                     # sandbox driver, availability, pool counts only
    "metrics": "staff",                      # or a scraper's STEPWELL_METRICS_TOKEN
    "status/": "staff",
    "runtimes/": "staff",
    "api/schema/workflow.json": "public",
    "api/schema/": "public",
    "api/docs/": "public",
    "api/redoc/": "public",
    "api/node-types/": "public",
    "api/python/check/": "user",             # compiles the posted code; runs nothing
    "api/workflows/<int:pk>/versions/": "owner",
    "api/workflows/<int:pk>/versions/diff/": "owner",
    "api/workflows/<int:pk>/versions/<int:number>/": "owner",
    "api/workflows/<int:pk>/versions/<int:number>/restore/": "owner",
    "api/workflows/<int:pk>/runs/": "owner",
    "api/workflows/<int:pk>/schemas/": "owner",
    "api/workflows/<int:pk>/pins/": "owner",
    "api/workflows/<int:pk>/hook/": "owner",
    "api/workflows/<int:pk>/hook/rotate/": "owner",
    "api/workflows/<int:pk>/nodes/<str:node_id>/test/": "owner",
    "api/workflows/<int:pk>/nodes/<str:node_id>/pin/": "owner",
    "api/workflows/<int:pk>/nodes/<str:node_id>/runs/": "owner",
    "api/workflows/<int:pk>/latest-run/": "owner",
    "api/runs/<int:pk>/": "owner",
    "api/runs/<int:pk>/cancel/": "owner",
    "api/runs/<int:pk>/rerun/": "owner",
    "api/runs/<int:pk>/events/": "owner",
    "api/runs/<int:pk>/steps/<int:step_id>/files/<path:name>": "owner",
    "api/workflows/": "user",
    "api/workflows/<pk>/": "owner",
    "api/workflows/<pk>/export/": "owner",
    "api/workflows/import/": "user",
    "api/workflows/validate/": "user",
    "api/": "public",                        # DRF's API root: links only
    "api/packages/upload/": "staff",
    "api/runtime/modules/": "user",
    "api/packages/": "staff",
    "api/packages/<pk>/": "staff",
    "api/runtimes/": "staff",
    "api/runtimes/<pk>/": "staff",
    "api/runtimes/<pk>/activate/": "staff",
    "api/runtimes/active/": "staff",
    "api/runtimes/build/": "staff",
    "api/runtimes/diff/": "staff",
    "audit/": "staff",
    "audit/<int:pk>/": "staff",
    "policy/": "staff",
    "api/audit/": "staff",
    "api/audit/export/": "staff",
    "api/audit/<int:pk>/": "staff",
    "api/policy/": "staff",
    "secrets/": "user",
    "usage/": "user",                        # staff see everyone's usage
    "api/secrets/": "user",
    "api/secrets/<str:secret_name>/": "owner",
    "api/usage/": "user",
    "keys/": "user",                         # API keys (agents/); staff list all with ?all=1
    "api/keys/": "user",
    "api/keys/<int:key_id>/": "owner",
    "api/keys/<int:key_id>/revoke/": "owner",
    # the code-interpreter API (agents/urls.py): a session is found by (pool, owner, identifier),
    # so another user's identifier names another session; pool writes are staff-only
    "api/sessionpools/": "user",
    "api/sessionpools/<slug:name>/": "user",
    "api/sessionpools/<slug:pool>/code/execute": "user",
    "api/sessionpools/<slug:pool>/code/execute/": "user",
    "api/sessionpools/<slug:pool>/executions": "user",
    "api/sessionpools/<slug:pool>/executions/": "user",
    "api/sessionpools/<slug:pool>/files": "user",
    "api/sessionpools/<slug:pool>/files/": "user",
    "api/sessionpools/<slug:pool>/files/<str:name>": "user",
    "api/sessionpools/<slug:pool>/files/<str:name>/": "user",
    "api/sessionpools/<slug:pool>/files/<str:name>/content": "user",
    "api/sessionpools/<slug:pool>/files/<str:name>/content/": "user",
    "api/sessionpools/<slug:pool>/files/content/<str:name>": "user",
    "api/sessionpools/<slug:pool>/files/content/<str:name>/": "user",
    "api/sessionpools/<slug:pool>/files/upload": "user",
    "api/sessionpools/<slug:pool>/files/upload/": "user",
    "api/sessionpools/<slug:pool>/python/execute": "user",
    "api/sessionpools/<slug:pool>/python/execute/": "user",
    "api/sessionpools/<slug:pool>/session": "user",
    "api/sessionpools/<slug:pool>/session/": "user",
    "api/sessionpools/<slug:pool>/sessions/<str:identifier>": "user",
    "api/sessionpools/<slug:pool>/sessions/<str:identifier>/": "user",
}
ROUTE_PREFIXES_OWN_CHECKS = ("admin/",)       # Django's admin checks is_staff itself
WEBSOCKETS = ("ws/workflows/<int:workflow_id>/", "ws/runs/<int:run_id>/")


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def _routes() -> list[str]:
    """Every route, in Django's own `path()` syntax; DRF router regexes turned into that syntax."""
    out = []
    for raw in _walk(get_resolver().url_patterns):
        route = raw.replace("^", "").replace("$", "").replace("\\.", ".")
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route)
        if "<format>" in route or "<drf_format_suffix:format>" in route:
            continue                          # DRF's format-suffix twins of the routes above
        out.append(route)
    return sorted(set(out))


def test_every_route_is_in_the_table():
    unnamed = [r for r in _routes() if r not in ROUTES and not r.startswith(ROUTE_PREFIXES_OWN_CHECKS)]
    assert not unnamed, f"routes missing from the permissions table: {unnamed}"
    gone = [r for r in ROUTES if r not in _routes()]
    assert not gone, f"table names routes that no longer exist: {gone}"


@pytest.fixture
def bobs(bob, definition):
    """Bob's workflow, version, run, step, file and pin, made through the real API and models."""
    from engine.models import PinnedOutput, StepFile, StepRun

    c = Client()
    c.force_login(bob)
    wf = c.post("/api/workflows/", {"name": "Bob's", "definition": definition},
                content_type="application/json").json()
    run = c.post(f"/api/workflows/{wf['id']}/runs/", {"payload": {"a": 1}},
                 content_type="application/json").json()
    step = StepRun.objects.create(run_id=run["id"], node_id="python_1", node_type="action.python")
    StepFile.objects.create(step=step, name="out.txt", size=3, content=b"bob")
    PinnedOutput.objects.create(workflow_id=wf["id"], node_id="python_1", output={"n": 1}, params_hash="x")
    token = c.get(f"/api/workflows/{wf['id']}/hook/").json()
    assert c.post("/api/secrets/", {"name": "BOB_SECRET", "value": "bob-value"},
                  content_type="application/json").status_code == 201
    key = c.post("/api/keys/", {"name": "bob-key"}, content_type="application/json").json()
    return {"pk": wf["id"], "run": run["id"], "step_id": step.pk, "number": 1, "node_id": "python_1",
            "name": "out.txt", "token": token, "secret_name": "BOB_SECRET", "key_id": key["id"]}


def _fill(route: str, ids: dict) -> str:
    pk = ids["run"] if route.startswith(("api/runs/", "runs/")) else ids["pk"]
    values = {"pool": "default", "identifier": "x", **ids, "pk": pk}
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


@pytest.mark.parametrize("route", sorted(r for r, who in ROUTES.items() if who == "owner"))
def test_other_users_objects_answer_404(route, alice, bob, bobs):
    c = Client()
    c.force_login(alice)
    url = _fill(route, bobs)
    for method in METHODS:
        r = getattr(c, method)(url, {"payload": {}, "name": "x"}, content_type="application/json")
        assert r.status_code in (404, 405), f"{method.upper()} {url} answered {r.status_code} to another user"
    # and the owner really reaches it, so the 404 above is about ownership, not a bad URL
    c.force_login(bob)
    assert c.get(url).status_code not in (404, 500), f"GET {url} fails for its owner"


@pytest.mark.parametrize("route", sorted(r for r, who in ROUTES.items() if who == "staff"))
def test_staff_routes_refuse_normal_users(route, alice, bobs):
    from runtimes.models import AllowedPackage

    pkg = AllowedPackage.objects.first()
    c = Client()
    c.force_login(alice)
    url = _fill(route, {**bobs, "pk": pkg.pk if pkg else 1})
    for method in METHODS:
        r = getattr(c, method)(url, {}, content_type="application/json")
        assert r.status_code in (403, 404, 405) or (r.status_code == 302 and "login" in r["Location"]), (
            f"{method.upper()} {url} answered {r.status_code} to a non-staff user")


def test_anonymous_callers_are_refused_everywhere_but_public_routes(bobs):
    c = Client()
    for route, who in ROUTES.items():
        if who == "public":
            continue
        url = _fill(route, bobs)
        for method in METHODS:
            r = getattr(c, method)(url, {}, content_type="application/json")
            ok = r.status_code in (401, 403, 404, 405) or (r.status_code == 302 and "login" in r["Location"])
            assert ok, f"anonymous {method.upper()} {url} answered {r.status_code}"


@pytest.mark.django_db(transaction=True)   # the consumers read the database from other threads
def test_websockets_refuse_other_users_objects(alice, bobs):
    from designer.asgi import application

    c = Client()
    c.force_login(alice)
    cookie = f"sessionid={c.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie)]
    paths = [ws.replace("<int:workflow_id>", str(bobs["pk"])).replace("<int:run_id>", str(bobs["run"]))
             for ws in WEBSOCKETS]

    async def scenario():
        for path in paths:
            comm = WebsocketCommunicator(application, "/" + path, headers=headers)
            connected, code = await comm.connect(timeout=5)
            assert not connected and code == 4404, f"{path}: connected={connected} code={code}"

    async_to_sync(scenario)()


def test_websocket_routes_are_the_ones_walked():
    from designer.routing import websocket_urlpatterns

    assert sorted(str(p.pattern) for p in websocket_urlpatterns) == sorted(WEBSOCKETS)

