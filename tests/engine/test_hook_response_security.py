"""Hook responses are served on the app's origin: a workflow owner must not be able to plant a
script, set a cookie, lift the Content-Security-Policy, redirect on a 200 or inject a header
line there. Each attack is sent to the real stack (uvicorn + worker) and the real answer checked."""
from __future__ import annotations

import json

import pytest

SANDBOX_CSP = "sandbox; default-src 'none'"
ATTACK_HEADERS = {
    "Content-Type": "text/html",
    "Set-Cookie": "sessionid=planted-by-the-owner; Path=/",
    "Content-Security-Policy": "default-src *; script-src 'unsafe-inline'",
    "Location": "https://attacker.invalid/",
}
SCRIPT = "<script>fetch('/api/workflows/').then(r => r.text()).then(alert)</script>"


def _flow(wf, headers: dict, body=SCRIPT, status_code: int = 200):
    return wf.definition(
        [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 20}),
         wf.node("reply", "action.response", {"status_code": status_code, "headers": headers, "body": body})],
        [wf.edge("hook", "reply")])


def _plant(stack, api, wf, definition: dict) -> str:
    """A workflow whose head is `definition`, written straight into the database the way a
    definition saved before these checks existed would be; returns its hook token."""
    w = api.create_workflow(_flow(wf, {}, body="benign"))
    stack.shell(
        "import json; from django.apps import apps;"
        "models = {m.__name__: m for m in apps.get_models()};"
        "Workflow, WorkflowVersion = models['Workflow'], models['WorkflowVersion'];"
        f"w = Workflow.objects.get(pk={w['id']});"
        f"v = WorkflowVersion.objects.create(workflow=w, number=99,"
        f" definition=json.loads({json.dumps(json.dumps(definition))}));"
        "Workflow.objects.filter(pk=w.pk).update(head=v)")
    return api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]


def _assert_safe(status: int, headers, content: bytes):
    """What every hook answer must look like, whatever the workflow asked for."""
    assert headers.get_all("Set-Cookie") is None, headers
    assert headers.get_all("Content-Security-Policy") == [SANDBOX_CSP], headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    media = headers["Content-Type"].split(";")[0].strip().lower()
    assert media in ("application/json", "text/plain"), headers["Content-Type"]
    assert not (200 <= status < 300 and headers.get("Location")), headers
    assert "Location" not in headers or 300 <= status < 400


def test_the_api_refuses_a_response_node_with_forbidden_headers(stack, wf):
    status, body = stack.api().post("/api/workflows/", {"name": "xss", "definition": _flow(wf, ATTACK_HEADERS)})
    assert status == 400, body
    assert set(body) == {"detail", "errors"}
    text = json.dumps(body["errors"])
    for name in ("Set-Cookie", "Content-Security-Policy", "Location"):
        assert name in text, (name, body)
    assert all(e["path"].startswith("$.definition.nodes[1].parameters.headers") for e in body["errors"]), body


@pytest.mark.parametrize("name,value", [
    ("Connection", "close"), ("Transfer-Encoding", "chunked"), ("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"),
    ("TE", "trailers"), ("Trailer", "X-A"), ("Proxy-Authenticate", "Basic"), ("set-cookie", "a=b"),
    ("X-Accel-Redirect", "/internal/secret_key"), ("X-Sendfile", "/etc/shadow"), ("Refresh", "0; url=/"),
    ("X-Ok", "a\r\nSet-Cookie: sessionid=x"), ("Bad Name", "x"),
])
def test_the_api_refuses_hop_by_hop_and_malformed_headers(stack, wf, name, value):
    status, body = stack.api().post("/api/workflows/", {"name": "h", "definition": _flow(wf, {name: value}, body={})})
    assert status == 400, (name, body)
    assert body["errors"][0]["path"].startswith("$.definition.nodes[1].parameters.headers"), body


def test_a_planted_definition_cannot_serve_html_cookies_or_a_csp_override(stack, wf):
    """The full attack of issue 10 finding 1, from a definition that skipped validation."""
    api = stack.api()
    token = _plant(stack, api, wf, _flow(wf, ATTACK_HEADERS))
    status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {}, raw=True)
    _assert_safe(status, headers, content)
    assert b"<script>" not in content
    body = json.loads(content)
    assert status == 502 and set(body) >= {"detail", "errors"} and "Set-Cookie" in body["detail"], body


@pytest.mark.parametrize("content_type", ["text/html", "TEXT/HTML; charset=utf-8", "application/xhtml+xml",
                                          "image/svg+xml", "text/xml", "application/xml", "text/javascript",
                                          "application/pdf", "multipart/x-mixed-replace; boundary=a", "nonsense"])
def test_a_mapped_content_type_cannot_make_the_body_active(stack, wf, content_type):
    """The header name is allowed, its value comes from the caller at run time."""
    api = stack.api()
    w = api.create_workflow(_flow(wf, {"Content-Type": "{{ trigger.body.ct }}"}, body="{{ trigger.body.html }}"))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {"ct": content_type, "html": SCRIPT},
                                                    raw=True)
    _assert_safe(status, headers, content)
    assert status == 502 and b"<script>" not in content, content


def test_a_mapped_header_value_cannot_inject_a_header_line(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, {"X-Echo": "{{ trigger.body.v }}"}, body={"ok": True}))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    for v in ("a\r\nSet-Cookie: sessionid=x", "a\nSet-Cookie: sessionid=x", "a\rb", "a\x00b"):
        status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {"v": v}, raw=True)
        _assert_safe(status, headers, content)
        # NUL never reaches a run (no database stores it): 400 at the door, on SQLite and PostgreSQL
        assert status == (400 if "\x00" in v else 502) and "X-Echo" not in headers, (v, status, headers)
        assert set(json.loads(content)) >= {"detail", "errors"}


def test_location_is_refused_outside_3xx_and_kept_on_a_redirect(stack, wf):
    api = stack.api()
    status, body = api.post("/api/workflows/", {"name": "loc", "definition": _flow(
        wf, {"Location": "https://example.com/"}, body={}, status_code=200)})
    assert status == 400 and "Location" in json.dumps(body), body
    w = api.create_workflow(_flow(wf, {"Location": "https://example.com/next"}, body={}, status_code=303))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    import urllib.request

    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    req = urllib.request.Request(f"{stack.base}/hooks/{token}/", data=b"{}", method="POST")
    try:
        urllib.request.build_opener(NoFollow).open(req)
        raise AssertionError("expected a 303")
    except urllib.error.HTTPError as err:
        assert err.code == 303 and err.headers["Location"] == "https://example.com/next"
        _assert_safe(err.code, err.headers, err.read())


def test_allowed_replies_keep_working_with_nosniff_and_the_sandbox_csp(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, {"Content-Type": "text/plain", "Cache-Control": "no-store", "X-Total": "3"},
                                  body="<b>plain</b> text"))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {}, raw=True)
    _assert_safe(status, headers, content)
    assert status == 200 and content == b"<b>plain</b> text"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Cache-Control"] == "no-store" and headers["X-Total"] == "3"

    w = api.create_workflow(_flow(wf, {"Content-Type": "text/csv"}, body="a,b\n1,2\n"))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {}, raw=True)
    assert status == 200 and content == b"a,b\n1,2\n" and headers["Content-Type"].startswith("text/csv")
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == SANDBOX_CSP

    w = api.create_workflow(_flow(wf, {}, body={"x": "<script>"}))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, content, headers = stack.api(None).call("POST", f"/hooks/{token}/", {}, raw=True)
    _assert_safe(status, headers, content)
    assert status == 200 and json.loads(content) == {"x": "<script>"}


def test_error_answers_carry_the_sandbox_csp_and_the_error_shape(stack):
    anon = stack.api(None)
    status, content, headers = anon.call("POST", "/hooks/no-such-token/", {}, raw=True)
    assert status == 404
    _assert_safe(status, headers, content)
    body = json.loads(content)
    assert body["errors"] == [{"path": "$", "message": body["detail"]}]


def test_a_hook_is_throttled_per_token_with_the_error_shape(private_stack, wf):
    s = private_stack(workers=0, env={"STEPWELL_HOOK_RATE": "3/min"})
    api = s.api()
    lone = wf.definition([wf.node("hook", "trigger.http", {"method": "POST"})], [])  # answers 202 at once
    token = api.get(f"/api/workflows/{api.create_workflow(lone)['id']}/hook/")[1]["token"]
    other = api.get(f"/api/workflows/{api.create_workflow(lone)['id']}/hook/")[1]["token"]
    anon = s.api(None)
    answers = [anon.call("POST", f"/hooks/{token}/", {}, raw=True, timeout=5) for _ in range(4)]
    assert [a[0] for a in answers[:3]] == [202] * 3, answers
    status, content, headers = answers[3]
    assert status == 429 and int(headers["Retry-After"]) >= 1
    _assert_safe(status, headers, content)
    body = json.loads(content)
    assert body["errors"] == [{"path": "$", "message": body["detail"]}]
    assert anon.call("POST", f"/hooks/{other}/", {}, raw=True, timeout=5)[0] != 429  # per token


@pytest.mark.django_db
def test_hook_urls_are_shown_on_the_hook_origin_when_one_is_set(settings, django_user_model, definition):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("carol", password="pw-carol-123"))
    wf_id = client.post("/api/workflows/", {"name": "w", "definition": definition}, format="json").json()["id"]
    token = client.get(f"/api/workflows/{wf_id}/hook/").json()["token"]
    assert client.get(f"/api/workflows/{wf_id}/hook/").json()["url"] == f"http://testserver/hooks/{token}/"
    settings.STEPWELL_HOOK_BASE_URL = "https://hooks.example.com"
    assert client.get(f"/api/workflows/{wf_id}/hook/").json()["url"] == f"https://hooks.example.com/hooks/{token}/"
    rotated = client.post(f"/api/workflows/{wf_id}/hook/rotate/").json()
    assert rotated["url"] == f"https://hooks.example.com/hooks/{rotated['token']}/"
