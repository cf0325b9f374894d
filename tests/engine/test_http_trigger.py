"""The HTTP request trigger: secret URL, synchronous Response, 202 without one, rotation."""


def _hook_flow(wf, respond=True, code="result = {'sum': sum(inputs['nums'])}"):
    nodes = [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 20}),
             wf.node("add", "action.python", {"code": code, "inputs": {"nums": "{{ trigger.body.nums }}"}})]
    edges = [wf.edge("hook", "add")]
    if respond:
        nodes.append(wf.node("reply", "action.response", {
            "status_code": 201, "headers": {"X-Total": "{{ steps.add.output.sum }}"},
            "body": {"total": "{{ steps.add.output.sum }}", "from": "{{ trigger.query.src }}"}}))
        edges.append(wf.edge("add", "reply"))
    return wf.definition(nodes, edges)


def test_it_replies_synchronously_with_the_response_node(stack, wf):
    api = stack.api()
    w = api.create_workflow(_hook_flow(wf))
    status, hook = api.get(f"/api/workflows/{w['id']}/hook/")
    assert status == 200 and hook["url"].endswith(f"/hooks/{hook['token']}/")
    anon = stack.api(None)
    status, body, headers = anon.call("POST", f"/hooks/{hook['token']}/?src=test", {"nums": [1, 2, 3.5]}, raw=True)
    assert status == 201, body
    import json
    assert json.loads(body) == {"total": 6.5, "from": "test"}
    assert headers["X-Total"] == "6.5"
    run = api.wait(int(headers["X-Stepwell-Run"]))
    assert run["trigger"] == "http" and run["status"] == "succeeded"
    assert run["payload"]["body"] == {"nums": [1, 2, 3.5]}


def test_it_answers_202_with_the_run_without_a_response_node(stack, wf):
    api = stack.api()
    w = api.create_workflow(_hook_flow(wf, respond=False))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, body = stack.api(None).post(f"/hooks/{token}/", {"nums": [1]})
    assert status == 202 and body["run_id"] and body["url"].endswith(f"/api/runs/{body['run_id']}/")
    assert api.wait(body["run_id"])["status"] == "succeeded"


def test_a_failing_run_answers_502(stack, wf):
    api = stack.api()
    w = api.create_workflow(_hook_flow(wf, code="raise SystemExit(3)"))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, body = stack.api(None).post(f"/hooks/{token}/", {"nums": [1]})
    assert status == 502 and body["status"] == "failed" and "add" in body["detail"]


def test_it_rejects_unknown_tokens_bad_json_and_rotated_urls(stack, wf):
    api = stack.api()
    w = api.create_workflow(_hook_flow(wf))
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    anon = stack.api(None)
    assert anon.post("/hooks/not-a-token/", {})[0] == 404
    status, body, _ = anon.call("GET", f"/hooks/{token}/", raw=True)
    assert status == 405
    import urllib.request
    req = urllib.request.Request(f"{stack.base}/hooks/{token}/", data=b"{nope", method="POST")
    try:
        urllib.request.urlopen(req)
        raise AssertionError("expected 400")
    except urllib.error.HTTPError as err:
        assert err.code == 400
    status, new = api.post(f"/api/workflows/{w['id']}/hook/rotate/")
    assert status == 201 and new["token"] != token
    assert anon.post(f"/hooks/{token}/", {"nums": [1]})[0] == 404
    assert anon.post(f"/hooks/{new['token']}/", {"nums": [1]})[0] == 201
    assert stack.api("bob").get(f"/api/workflows/{w['id']}/hook/")[0] == 404


def test_it_answers_202_when_the_response_is_late(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 2}),
         wf.node("slow", "action.python", {"code": "import time\ntime.sleep(5)\nresult = 1"}),
         wf.node("reply", "action.response", {"body": "late"})],
        [wf.edge("hook", "slow"), wf.edge("slow", "reply")])
    w = api.create_workflow(d)
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, body = stack.api(None).post(f"/hooks/{token}/", {})
    assert status == 202 and body["status"] in ("queued", "running") and "no response within 2 s" in body["detail"]
    run = api.wait(body["run_id"])
    assert run["status"] == "succeeded" and run["response"]["body"] == "late"
