"""Overload (a real stack whose only worker runs one run at a time): a synchronous hook waits at
most its response timeout, then answers 503 with Retry-After and the run's id; the run stays
queued and runs later. The queue is visible at /metrics (a scraper's token) and on /status/."""
import json
import urllib.error
import urllib.request

import pytest


def _metrics(stack, token=None):
    req = urllib.request.Request(stack.base + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _value(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
                or line.startswith(name + "{"))


@pytest.mark.once
def test_a_busy_deployment_answers_503_with_retry_after_and_runs_the_work_later(private_stack, wf):
    stack = private_stack(workers=0, env={"STEPWELL_METRICS_TOKEN": "scrape-me"})
    stack.start_worker("worker0", "--concurrency", "1")
    api = stack.api()
    blocker = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("sleep", "action.python", {"code": "import time\ntime.sleep(8)"})],
        [wf.edge("trigger", "sleep")]))
    hooked = api.create_workflow(wf.definition(
        [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 1}),
         wf.node("reply", "action.response", {"body": "done"})],
        [wf.edge("hook", "reply")]))
    token = api.get(f"/api/workflows/{hooked['id']}/hook/")[1]["token"]

    first = api.start(blocker["id"])
    api.wait(first["id"], until=lambda r: r["status"] == "running")
    status, body, headers = stack.api(None).call("POST", f"/hooks/{token}/", {}, raw=True)
    assert status == 503, body
    assert headers["Retry-After"] == "1"
    answer = json.loads(body)
    assert "every worker is busy" in answer["detail"] and answer["status"] == "queued", answer

    assert _metrics(stack)[0] == 403                       # no token, no session
    assert _metrics(stack, "wrong")[0] == 403
    code, text = _metrics(stack, "scrape-me")
    assert code == 200 and _value(text, "stepwell_queue_depth") >= 1, text
    assert 'stepwell_runs{status="running"} 1.0' in text and "stepwell_sandbox_slots" in text, text

    late = api.wait(answer["run_id"], timeout=60)             # it ran once the worker was free
    assert late["status"] == "succeeded" and late["response"]["body"] == "done", late
    assert api.wait(first["id"], timeout=60)["status"] == "succeeded"
    code, text = _metrics(stack, "scrape-me")
    assert _value(text, "stepwell_queue_depth") == 0 and _value(text, "stepwell_executions_total") >= 1, text
