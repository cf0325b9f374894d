"""API views: parse, make one call to `designer.actions`, respond."""
from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from designer import actions
from designer.api.errors import bad_request
from designer.api.serializers import (
    ImportSerializer, ValidationResultSerializer, VersionListSerializer, VersionSerializer,
    WorkflowListSerializer, WorkflowSerializer,
)
from engine.models import Workflow
from engine.nodes import NODE_TYPES
from engine.schema import workflow_schema
from engine.drafts import same_definition
from engine.validation import validate_definition


class WorkflowViewSet(viewsets.ModelViewSet):
    """Workflows of the signed-in user. Updating the definition saves a new version."""

    serializer_class = WorkflowSerializer
    queryset = Workflow.objects.none()  # tells the schema the model (so the id is an integer)

    def get_queryset(self):
        qs = Workflow.objects.filter(owner=self.request.user).select_related("head")
        if self.action == "list":  # the list shows each workflow's newest run (WorkflowListSerializer)
            from django.db.models import OuterRef, Subquery

            from engine.models import Run

            newest = Run.objects.filter(workflow=OuterRef("pk"), kind=Run.Kind.RUN).order_by("-id")
            qs = qs.annotate(last_run_id=Subquery(newest.values("id")[:1]),
                             last_run_status=Subquery(newest.values("status")[:1]))
        return qs

    def get_serializer_class(self):
        return WorkflowListSerializer if self.action == "list" else WorkflowSerializer

    def perform_create(self, serializer):
        d = serializer.validated_data
        serializer.instance = actions.do_create_workflow(
            self.request.user, d["name"], d.get("description", ""), d.get("definition"))

    def perform_update(self, serializer):
        d = serializer.validated_data
        workflow = serializer.instance
        if "name" in d or "description" in d:
            actions.do_rename_workflow(workflow, d.get("name"), d.get("description"))
        # the same definition as the newest version: no new version (the answer says `unchanged`)
        self.unchanged = "definition" in d and same_definition(d["definition"], workflow.definition)
        if "definition" in d and not self.unchanged:
            actions.do_save_version(workflow, d["definition"], self.request.user, d.get("message", ""))
        workflow.refresh_from_db()

    @extend_schema(responses={200: WorkflowSerializer})
    def update(self, request, *args, **kwargs):
        """Rename, or save the definition as a new version. A definition equal to the newest
        version's saves nothing: the answer names the existing version and has `unchanged: true`."""
        self.unchanged = False
        response = super().update(request, *args, **kwargs)
        if response.status_code == 200 and isinstance(response.data, dict):
            response.data["unchanged"] = self.unchanged
        return response

    def perform_destroy(self, instance):
        actions.do_delete_workflow(instance, self.request.user)

    @extend_schema(request=None, responses={200: ImportSerializer})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """The workflow as a JSON document that import accepts."""
        workflow = self.get_object()
        response = Response(actions.export_workflow(workflow))
        response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}.json"'
        return response

    @extend_schema(request=ImportSerializer, responses={201: WorkflowSerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_(self, request):
        """Create a workflow from an exported document."""
        s = ImportSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        workflow = actions.do_import_workflow(request.user, s.validated_data)
        return Response(WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request={"application/json": {"type": "object"}},
                   responses={200: ValidationResultSerializer})
    @action(detail=False, methods=["post"])
    def validate(self, request):
        """Check a definition (the request body) without saving anything."""
        if not isinstance(request.data, dict):
            return bad_request("the body must be a JSON object (a workflow definition)")
        problems = validate_definition(request.data, max_nodes=settings.MAX_DEFINITION_NODES,
                                       max_bytes=settings.MAX_DEFINITION_BYTES)
        if not problems:   # settings.secrets must name the caller's secrets
            from governance.secret_actions import problems as secret_problems
            from engine.validation import Problem

            problems = [Problem(path, message) for path, message in secret_problems(request.user.pk, request.data)]
        if not problems:   # the instance policy's timeout and memory ceilings, as the save will check them
            from engine.validation import Problem
            from governance.policies import current
            from governance.rules import evaluate

            problems = [Problem(v.path, f"{v.message} [policy rule {v.rule}]", v.node_id)
                        for v in evaluate(request.data, current()) if v.rule in ("max_timeout", "max_memory")]
        return Response({"valid": not problems, "errors": [p.to_dict() for p in problems]})


class VersionList(generics.ListAPIView):
    """All versions of one workflow, newest first."""

    serializer_class = VersionListSerializer

    def get_queryset(self):
        workflow = get_object_or_404(Workflow, pk=self.kwargs["pk"], owner=self.request.user)
        return workflow.versions.select_related("author")


class VersionDetail(generics.RetrieveAPIView):
    """One version with its definition."""

    serializer_class = VersionSerializer

    def get_object(self):
        workflow = get_object_or_404(Workflow, pk=self.kwargs["pk"], owner=self.request.user)
        return get_object_or_404(workflow.versions, number=self.kwargs["number"])


class VersionRestore(generics.GenericAPIView):
    """Save an old version's definition as the newest version."""

    serializer_class = VersionSerializer

    @extend_schema(request=None, responses={201: VersionSerializer})
    def post(self, request, pk, number):
        workflow = get_object_or_404(Workflow, pk=pk, owner=request.user)
        get_object_or_404(workflow.versions, number=number)
        version = actions.do_restore_version(workflow, number, request.user)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


@extend_schema(responses={200: OpenApiResponse(description="JSON Schema (Draft 2020-12)")})
@api_view(["GET"])
@permission_classes([AllowAny])
def definition_schema(request):
    """The JSON Schema of a workflow definition."""
    return Response(workflow_schema(), content_type="application/schema+json")


@extend_schema(responses={200: OpenApiResponse(description="Node types for the palette")})
@api_view(["GET"])
def node_types(request):
    """The node types a definition may use, with their ports and parameter schemas (maxima of
    timeouts and memory lowered to this server's caps)."""
    from engine.validation import capped_parameters

    types = [t.to_dict() for t in NODE_TYPES.values()]
    for t in types:   # the maxima this server accepts (engine.validation checks them at save)
        t["parameters_schema"] = capped_parameters(t["key"], t["parameters_schema"])
    return Response(types)
