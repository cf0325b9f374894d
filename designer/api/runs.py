"""Run history, step tests, pins, schemas, hook URLs. Views parse, call one action, respond."""
from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from designer.api.drafts import code_syntax_problems
from designer.api.errors import bad_request, error_json, error_response, validation_json
from designer.api.hooks import hook_url
from designer.api.rerun import RerunRequest
from engine import actions
from engine.inference import fields as schema_fields
from engine.models import NodeSchema, PinnedOutput, Run, StepEvent, StepFile, StepRun, Workflow
from engine.pinned import do_start_run_with_pins, pinned_of
from engine.status import Status
from engine.wake import ReplyWaiter


# --- serializers ------------------------------------------------------------------------------
class StepRunSerializer(serializers.ModelSerializer):
    duration_ms = serializers.FloatField(read_only=True)
    files = serializers.SerializerMethodField()
    reused_from = serializers.SerializerMethodField(
        help_text="A rerun's step that reused an earlier run's record: {run, step} (engine/rerun.py), else null.")

    class Meta:
        model = StepRun
        fields = ["id", "node_id", "node_type", "item_index", "item_path", "attempt", "status", "inputs", "output",
                  "stdout", "stderr", "error", "sandbox", "files", "created", "started", "finished",
                  "duration_ms", "reused_from"]

    def get_reused_from(self, step) -> dict | None:
        reused = (step.sandbox or {}).get("reused") if isinstance(step.sandbox, dict) else None
        return reused if isinstance(reused, dict) else None

    def get_files(self, step) -> list:
        return [{**f, "url": reverse("run-step-file", args=[step.run_id, step.pk, f["name"]])}
                for f in step.files]


class RunListSerializer(serializers.ModelSerializer):
    duration_ms = serializers.FloatField(read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    started_by = serializers.CharField(source="started_by.username", default=None, read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()
    page = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "url", "page", "workflow", "version", "kind", "trigger", "started_by", "rerun_of", "status",
                  "error", "created", "started", "finished", "duration_ms", "draft_hash"]

    def get_url(self, run) -> str:
        return reverse("run-detail", args=[run.pk])

    def get_page(self, run) -> str:
        return reverse("run-page", args=[run.pk])


class RunSerializer(RunListSerializer):
    steps = StepRunSerializer(many=True, read_only=True)
    pinned_nodes = serializers.SerializerMethodField(help_text="Nodes that took their pinned output (use_pinned).")
    rerun_from = serializers.SerializerMethodField(
        help_text="A rerun from a step: {node, item_index, source_run} (engine/rerun.py), else null.")

    class Meta(RunListSerializer.Meta):
        fields = RunListSerializer.Meta.fields + ["payload", "response", "test_node", "cancel_requested",
                                                  "worker", "steps", "pinned_nodes", "rerun_from"]

    def get_pinned_nodes(self, run) -> list[str]:
        return sorted(pinned_of(run))

    def get_rerun_from(self, run) -> dict | None:
        from engine.rerun import spec_of

        return spec_of(run)


class StartRunSerializer(serializers.Serializer):
    payload = serializers.JSONField(required=False, default=dict)
    use_pinned = serializers.BooleanField(required=False, default=False,
                                          help_text="Pinned nodes take their pinned output instead of running.")


class NodeTestSerializer(serializers.Serializer):
    input = serializers.JSONField(required=False, default=None,
                                  help_text='{"trigger": ..., "steps": {node_id: output}, "item": ..., "index": ...}')
    use_latest_run = serializers.BooleanField(required=False, default=False)
    timeout_s = serializers.FloatField(required=False, default=60, min_value=0.1, max_value=600)
    definition = serializers.JSONField(required=False, default=None, help_text=(
        "The editor's unsaved draft: the test runs the node as it is in it (nothing is saved; the "
        "test run records the draft's hash and the version it is based on)."))


class PinSerializer(serializers.Serializer):
    output = serializers.JSONField(required=False)
    run = serializers.IntegerField(required=False, help_text="Pin this run's output of the node instead.")


def _owned_workflow(request, pk) -> Workflow:
    return get_object_or_404(Workflow.objects.select_related("head"), pk=pk, owner=request.user)


def _owned_run(request, pk) -> Run:
    return get_object_or_404(Run.objects.select_related("version", "started_by"), pk=pk,
                             workflow__owner=request.user)


# --- runs -------------------------------------------------------------------------------------
def _when(name: str, text: str, end_of_day: bool):
    """An aware datetime from ?since=/?until= (ISO date or datetime); a bare date covers its whole day."""
    from datetime import datetime, time, timedelta

    from django.utils import timezone
    from django.utils.dateparse import parse_date, parse_datetime

    try:
        day = parse_date(text)  # first: parse_datetime also reads a bare date, as midnight
        moment = None if day else parse_datetime(text)
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise serializers.ValidationError({name: [f"{text!r} is not an ISO date (2026-01-31) or date-time"]})
    if moment is None:
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
    elif end_of_day:  # ?until= a date-time includes that instant
        moment += timedelta(microseconds=1)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _filter_runs(qs, params):
    """Narrow runs by ?since=, ?until= (created; dates are inclusive, in the server's time zone),
    ?trigger=<kind>[,<kind>] and ?version=<number>."""
    since, until = params.get("since"), params.get("until")
    if since:
        qs = qs.filter(created__gte=_when("since", since, end_of_day=False))
    if until:
        qs = qs.filter(created__lt=_when("until", until, end_of_day=True))
    triggers = [t for t in (params.get("trigger") or "").split(",") if t]
    unknown = [t for t in triggers if t not in Run.Trigger.values]
    if unknown:
        raise serializers.ValidationError({"trigger": [f"unknown trigger {unknown[0]!r}; one of "
                                                       f"{', '.join(Run.Trigger.values)}"]})
    if triggers:
        qs = qs.filter(trigger__in=triggers)
    version = params.get("version")
    if version:
        if not version.isdigit():
            raise serializers.ValidationError({"version": ["a version number, e.g. 3"]})
        qs = qs.filter(version__number=int(version))
    return qs


class WorkflowRuns(generics.ListCreateAPIView):
    """Runs of one workflow, newest first (?status=, ?kind=run|test, ?since=, ?until=, ?trigger=,
    ?version=; paged). POST starts a run."""

    serializer_class = RunListSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, description="Comma-separated statuses"),
        OpenApiParameter("kind", str, enum=Run.Kind.values),
        OpenApiParameter("since", str, description="Created on or after: ISO date (whole day) or date-time"),
        OpenApiParameter("until", str, description="Created on or before: ISO date (whole day) or date-time"),
        OpenApiParameter("trigger", str, description=f"Comma-separated trigger kinds: {', '.join(Run.Trigger.values)}"),
        OpenApiParameter("version", int, description="Version number")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        workflow = _owned_workflow(self.request, self.kwargs["pk"])
        qs = workflow.runs.select_related("version", "started_by").filter(
            kind=self.request.query_params.get("kind", Run.Kind.RUN))
        wanted = self.request.query_params.get("status")
        if wanted:
            statuses = [s for s in wanted.split(",") if s]
            unknown = [s for s in statuses if s not in Status.values]
            if unknown:
                raise serializers.ValidationError({"status": [f"unknown status {unknown[0]!r}; one of "
                                                              f"{', '.join(Status.values)}"]})
            qs = qs.filter(status__in=statuses)
        return _filter_runs(qs, self.request.query_params)

    @extend_schema(request=StartRunSerializer, responses={201: RunSerializer})
    def post(self, request, pk):
        workflow = _owned_workflow(request, pk)
        s = StartRunSerializer(data=request.data if isinstance(request.data, dict) else {"payload": request.data})
        s.is_valid(raise_exception=True)
        payload = actions.trigger_payload(s.validated_data["payload"])
        head = workflow.head.definition if workflow.head else {}
        problems = code_syntax_problems(head, prefix="$.head.definition")
        if problems:   # a run is blocked (a save is not) by code that cannot compile
            return Response({"detail": f"Not run: a code step has a syntax error ({problems[0]['message'][12:]})",
                             "errors": problems}, status=400)
        try:
            if s.validated_data["use_pinned"]:
                run = do_start_run_with_pins(workflow, payload, request.user)
            else:
                run = actions.do_start_run(workflow, payload, Run.Trigger.MANUAL, request.user)
        except actions.TooManyRuns as exc:
            return _too_many(exc)
        except actions.RunRefused as exc:
            return bad_request(str(exc))
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


def _too_many(exc: actions.TooManyRuns) -> Response:
    response = error_response(429, str(exc))
    response["Retry-After"] = str(exc.retry_after_s)
    return response


class RunDetail(generics.RetrieveAPIView):
    """One run with its step runs (inputs as resolved, outputs, logs, files, sandbox metadata)."""

    serializer_class = RunSerializer

    def get_object(self):
        return _owned_run(self.request, self.kwargs["pk"])


class RunCancel(APIView):
    @extend_schema(request=None, responses={200: RunSerializer})
    def post(self, request, pk):
        run = _owned_run(request, pk)
        if run.is_finished:
            return error_response(409, f"the run already finished ({run.status})")
        return Response(RunSerializer(actions.do_cancel_run(run)).data)


class RunRerun(APIView):
    """Rerun with the same payload; with `from_node` (and `item_index`), from that step on,
    reusing the recorded outputs upstream (designer/api/rerun.py)."""

    @extend_schema(request=RerunRequest, responses={201: RunSerializer})
    def post(self, request, pk):
        run = _owned_run(request, pk)
        if isinstance(request.data, dict) and "from_node" in request.data:
            from designer.api.rerun import rerun_from_step

            return rerun_from_step(request, run, lambda r: RunSerializer(r).data, _too_many)
        same = bool(isinstance(request.data, dict) and request.data.get("same_version"))
        try:
            new = actions.do_rerun(run, request.user, same_version=same)
        except actions.TooManyRuns as exc:
            return _too_many(exc)
        return Response(RunSerializer(new).data, status=status.HTTP_201_CREATED)


class RunEvents(APIView):
    """Status events of a run after ?after=<event id> (what the websocket streams)."""

    @extend_schema(responses={200: OpenApiResponse(description="Status events after ?after=<event id>, oldest first")})
    def get(self, request, pk):
        run = _owned_run(request, pk)
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            return bad_request("after must be an event id", "$.after")
        events = StepEvent.objects.filter(run=run, pk__gt=int(after)).order_by("id")[:1000]
        return Response([e.to_message() for e in events])


class StepFileDownload(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The file's content (application/octet-stream)")})
    def get(self, request, pk, step_id, name):
        run = _owned_run(request, pk)
        f = get_object_or_404(StepFile, step__run=run, step_id=step_id, name=name)
        if f.content is None:
            return error_response(410, f"{name} was larger than the sandbox's file cap; its content was not kept")
        response = HttpResponse(bytes(f.content), content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


# --- designer helpers -------------------------------------------------------------------------
class WorkflowSchemas(APIView):
    """Inferred output schemas {node_id: schema} and the field picker's flattened paths."""

    @extend_schema(responses={200: OpenApiResponse(description="{schemas: {node_id: JSON Schema}, fields: {node_id: [{path, expression, type}]}, samples}")})
    def get(self, request, pk):
        workflow = _owned_workflow(request, pk)
        rows = NodeSchema.objects.filter(workflow=workflow).order_by("node_id")
        pins = {p.node_id: p for p in PinnedOutput.objects.filter(workflow=workflow)}
        schemas, flat = {}, {}
        for row in rows:
            schemas[row.node_id] = row.schema
            flat[row.node_id] = schema_fields(row.node_id, row.schema)
        for node_id, pin in pins.items():  # pinned samples count for nodes that never ran
            if node_id not in schemas:
                from engine.inference import merge

                schemas[node_id] = merge(None, pin.output)
                flat[node_id] = schema_fields(node_id, schemas[node_id])
        return Response({"schemas": schemas, "fields": flat,
                         "samples": {r.node_id: r.samples for r in rows}})


def _pin_data(pin: PinnedOutput, workflow: Workflow, snapshot: dict | None = None) -> dict:
    node = next((n for n in (workflow.definition or {}).get("nodes", []) if n["id"] == pin.node_id), None)
    stale = node is None or actions.node_params_hash(node) != pin.params_hash
    return {"node_id": pin.node_id, "output": pin.output, "stale": stale, "source_run": pin.source_run_id,
            "pinned_at": pin.created.isoformat(), "snapshot": snapshot or {}}


class WorkflowPins(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="{node_id: {output, stale, source_run, pinned_at, snapshot: {version, nodes}}}")})
    def get(self, request, pk):
        from designer.api.node_data import pin_snapshots

        workflow = _owned_workflow(request, pk)
        pins = list(PinnedOutput.objects.filter(workflow=workflow))
        snapshots = pin_snapshots(workflow, pins)   # what the node and its upstream were when pinned
        return Response({p.node_id: _pin_data(p, workflow, snapshots.get(p.node_id)) for p in pins})


class NodePin(APIView):
    """POST pins {"output": ...} (or {"run": id}: that run's output of the node); DELETE unpins."""

    @extend_schema(request=PinSerializer, responses={201: OpenApiResponse(description="{node_id, output, stale, source_run, pinned_at}")})
    def post(self, request, pk, node_id):
        workflow = _owned_workflow(request, pk)
        s = PinSerializer(data=request.data if isinstance(request.data, dict) else {})
        s.is_valid(raise_exception=True)
        source = None
        if "run" in s.validated_data:
            source = get_object_or_404(Run, pk=s.validated_data["run"], workflow=workflow)
            step = source.steps.filter(node_id=node_id, status=Status.SUCCEEDED).order_by("-id").first()
            if step is None:
                return bad_request(f"run {source.pk} has no successful output of {node_id!r}", "$.run")
            output = step.output
        elif "output" in s.validated_data:
            output = s.validated_data["output"]
        else:
            return bad_request("give either output or run", "$")
        try:
            pin = actions.do_pin_output(workflow, node_id, output, source)
        except actions.RunRefused as exc:
            return error_response(404, str(exc))
        return Response(_pin_data(pin, workflow), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Unpinned")})
    def delete(self, request, pk, node_id):
        workflow = _owned_workflow(request, pk)
        if not actions.do_unpin_output(workflow, node_id):
            return error_response(404, "not pinned")
        return Response(status=status.HTTP_204_NO_CONTENT)


def _api_user(request):
    """(user, None) authenticated the way the REST API does (session with CSRF, or token), else
    (None, error response). For the async views below, which DRF cannot serve."""
    from rest_framework import exceptions
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    from rest_framework.parsers import JSONParser

    request.body  # noqa: B018 - cache the body: the CSRF check below reads request.POST through DRF
    drf = Request(request, parsers=[JSONParser()],
                  authenticators=[a() for a in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    try:
        user = drf.user
    except exceptions.APIException as exc:
        return None, error_json(403, str(exc.detail))
    if not user or not user.is_authenticated:
        return None, error_json(403, "Authentication credentials were not provided.")
    return user, None


def _test_prepare(request, pk, node_id):
    user, err = _api_user(request)
    if err:
        return err, None
    workflow = Workflow.objects.select_related("head").filter(pk=pk, owner=user).first()
    if workflow is None:
        return error_json(404, "Not found."), None
    try:
        data = json.loads(request.body) if request.body else {}
    except ValueError:
        return error_json(400, "the body must be JSON"), None
    s = NodeTestSerializer(data=data if isinstance(data, dict) else {})
    if not s.is_valid():
        return validation_json(s.errors), None
    sample = s.validated_data["input"]
    if sample is not None and not isinstance(sample, dict):
        return error_json(400, "input must be an object", "$.input"), None
    from designer.api.drafts import check_draft_test

    refused = check_draft_test(user, s.validated_data["definition"], node_id, workflow)
    if refused is not None:
        return refused, None
    return None, (user, workflow, s.validated_data)


def _test_start(user, workflow, node_id, data, reply_socket):
    try:
        return None, actions.do_test_node(workflow, node_id, user, data["input"], data["use_latest_run"],
                                          reply_socket=reply_socket, draft=data["definition"])
    except actions.TooManyRuns as exc:
        response = error_json(429, str(exc))
        response["Retry-After"] = str(exc.retry_after_s)
        return response, None
    except actions.RunRefused as exc:
        return error_json(404, str(exc)), None


def _test_body(run, node_id) -> dict:
    step = run.steps.filter(node_id=node_id).order_by("-id").first()
    return {"run": RunSerializer(run).data, "status": run.status,
            "output": step.output if step else None, "stdout": step.stdout if step else "",
            "stderr": step.stderr if step else "", "error": (step.error if step else "") or run.error,
            "namespace": run.test_upstream,
            "draft": {"hash": run.draft_hash, "base_version": run.version.number} if run.draft_hash else None}


@csrf_exempt  # SessionAuthentication enforces CSRF itself in _api_user
async def node_test(request, pk, node_id):
    """POST: run one node in the worker (the sandbox for Python) and wait for its result.

    Body: {"input": {"trigger": ..., "steps": {node_id: output}, "item": ..., "index": ...},
    "use_latest_run": bool, "timeout_s": 60}. Answers 200 with output/stdout/stderr, or 202 with
    the run when it is still going after timeout_s. Async: no thread waits for the sandbox.
    """
    from asgiref.sync import sync_to_async

    if request.method != "POST":
        return error_json(405, "use POST")
    err, prepared = await sync_to_async(_test_prepare)(request, pk, node_id)
    if err:
        return err
    user, workflow, data = prepared
    with ReplyWaiter() as waiter:
        err, run = await sync_to_async(_test_start)(user, workflow, node_id, data, waiter.path)
        if err:
            return err
        run = await waiter.async_wait(run.pk, data["timeout_s"], lambda r: r.is_finished)
    body = await sync_to_async(_test_body)(run, node_id)
    return JsonResponse(body, status=200 if run.is_finished else 202)


class WorkflowHook(APIView):
    """The workflow's secret HTTP trigger URL; POST .../hook/rotate/ replaces it."""

    @extend_schema(responses={200: OpenApiResponse(description="{token, url} of the HTTP trigger")})
    def get(self, request, pk):
        workflow = _owned_workflow(request, pk)
        hook = actions.hook_for(workflow)
        return Response({"token": hook.token, "url": hook_url(request, hook.token)})


class WorkflowHookRotate(APIView):
    @extend_schema(request=None, responses={201: OpenApiResponse(description="{token, url}: the new secret URL")})
    def post(self, request, pk):
        workflow = _owned_workflow(request, pk)
        hook = actions.do_rotate_hook(workflow)
        return Response({"token": hook.token, "url": hook_url(request, hook.token)},
                        status=status.HTTP_201_CREATED)
