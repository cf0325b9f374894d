"""The public HTTP trigger: `POST /hooks/<token>/` starts a run and answers with its Response
node's reply, or 202 with the run. No authentication: the token is the secret.

Hook answers are what a workflow owner wrote, so each one, errors included, is held to
`engine.response_policy` (allowed headers and content types, a sandboxing CSP and `nosniff`).
In production, serve hooks from a separate cookieless origin (`STEPWELL_HOOK_BASE_URL`);
`hook_url` builds the URLs the API shows from it. Calls are throttled per token
(`STEPWELL_HOOK_RATE`, `designer.throttling`).

Under overload a caller never hangs: a hook with a Response node waits at most its response
timeout; if no worker has started the run by then it answers 503 with `Retry-After` (the run
stays queued and runs later), and if the run started but has not replied, 202 with the run.
"""
from __future__ import annotations

import json
import math

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from designer.api.errors import error_json
from designer.throttling import throttle_hook
from engine import actions, response_policy
from engine.models import HookToken, Run
from engine.states import Status
from engine.wake import ReplyWaiter


def hook_url(request, token: str) -> str:
    """The public URL of hook `token`: on STEPWELL_HOOK_BASE_URL when set, else on this request's origin."""
    path = reverse("hook", args=[token])
    base = settings.STEPWELL_HOOK_BASE_URL
    return base.rstrip("/") + path if base else request.build_absolute_uri(path)


def _sandboxed(response: HttpResponse) -> HttpResponse:
    for name, value in response_policy.SANDBOX_HEADERS.items():
        response[name] = value
    return response


def _error(status_code: int, message: str, **extra) -> HttpResponse:
    response = error_json(status_code, message)
    if extra:  # what the caller needs to follow the run (run_id, status, url) beside the error
        response.content = json.dumps({**json.loads(response.content), **extra})
    return _sandboxed(response)


def _ends_in_response(definition: dict) -> bool:
    return any(n["type"] == "action.response" for n in definition.get("nodes", []))


def _hook_prepare(request, token):
    """(error response, None) or (None, (workflow, payload, waits, timeout))."""
    wait_s = throttle_hook(token)
    if wait_s is not None:
        err = _error(429, f"too many calls of this hook; retry in {math.ceil(wait_s)} s")
        err["Retry-After"] = str(math.ceil(wait_s))
        return err, None
    h = HookToken.objects.select_related("workflow", "workflow__head").filter(token=token).first()
    if h is None or h.workflow.head is None:
        return _error(404, "no such hook"), None
    workflow = h.workflow
    definition = workflow.head.definition
    trigger = next((n for n in definition["nodes"] if n["type"] == "trigger.http"), None)
    if trigger is None:
        return _error(404, "this workflow has no HTTP request trigger"), None
    method = trigger.get("parameters", {}).get("method", "POST")
    if request.method != method:
        return _error(405, f"this hook accepts {method}"), None
    body = None
    if request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, "the body must be JSON"), None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("cookie", "authorization")}
    payload = actions.trigger_payload(body, headers=headers, query=dict(request.GET.items()), method=request.method)
    timeout = min(float(trigger.get("parameters", {}).get("response_timeout_s") or settings.STEPWELL_HOOK_TIMEOUT_S),
                  settings.STEPWELL_HOOK_TIMEOUT_S)
    return None, (workflow, payload, _ends_in_response(definition), timeout)


def _reply(run: Run) -> HttpResponse:
    """The Response node's reply as the policy lets it out; 502 when it breaks the policy (a
    definition saved before the policy, or an output that did not come from the Response step)."""
    try:
        status, headers, body = response_policy.render(run.response)
    except response_policy.Refused as exc:
        return _error(502, f"the Response node's reply was refused: {exc}", run_id=run.pk, status=run.status)
    out = HttpResponse(body, status=status)
    for name, value in headers.items():
        out[name] = value
    out["X-Stepwell-Run"] = str(run.pk)
    return out


@csrf_exempt
async def hook(request, token):
    """Start a run from an HTTP request; answer with the Response node's reply when there is one
    (within the trigger's response_timeout_s), else 202 with the run's id and URL.

    Async so that a request waiting for its run holds no thread: the worker pokes the request's
    reply socket when the Response node ran (or the run ended)."""

    def run_url(run_id):
        return request.build_absolute_uri(reverse("run-detail", args=[run_id]))

    def prepare_and_start(reply_socket: str):
        """One trip to the sync thread: throttle, look the hook up, then start the run."""
        err, prepared = _hook_prepare(request, token)
        if err:
            return err, None, None
        workflow, payload, waits, timeout = prepared
        try:
            run = actions.do_start_run(workflow, payload, Run.Trigger.HTTP,
                                       reply_socket=reply_socket if waits else "")
        except actions.TooManyRuns as exc:  # the owner's runs cap (STEPWELL_MAX_ACTIVE_RUNS_PER_USER)
            err = _error(429, str(exc))
            err["Retry-After"] = str(exc.retry_after_s)
            return err, None, None
        except actions.RunRefused as exc:  # e.g. a body the database cannot store
            return _error(400, str(exc)), None, None
        return None, run, (waits, timeout)

    with ReplyWaiter() as waiter:
        err, run, rest = await sync_to_async(prepare_and_start)(waiter.path)
        if err:
            return err
        waits, timeout = rest
        if not waits:
            return _sandboxed(JsonResponse({"run_id": run.pk, "status": run.status, "url": run_url(run.pk)},
                                           status=202))
        run = await waiter.async_wait(run.pk, timeout, lambda r: r.response is not None or r.is_finished,
                                      check_first=False)
    if run.response is not None:
        return _sandboxed(_reply(run))
    info = {"run_id": run.pk, "status": run.status, "url": run_url(run.pk)}
    if run.status == Status.QUEUED:   # no worker was free for it within the timeout
        err = _error(503, f"every worker is busy: the run did not start within {timeout:g} s; it stays "
                          "queued and runs when a worker is free", **info)
        err["Retry-After"] = str(max(1, math.ceil(timeout)))
        return err
    if run.is_finished and run.status != Status.SUCCEEDED:
        return _error(502, run.error or f"the run {run.status}", **info)
    if run.is_finished:
        info["detail"] = "the run finished without reaching its Response node"
    else:
        info["detail"] = f"no response within {timeout:g} s; the run goes on"
    return _sandboxed(JsonResponse(info, status=202))
