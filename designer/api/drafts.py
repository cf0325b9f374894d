"""Working with drafts in the editor: the checks before a step test of an unsaved draft, the
diff between two saved versions, and the Python syntax check behind the code editor's markers."""
from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from designer.api.errors import DefinitionRejected, bad_request, error_json, max_code_chars
from engine import drafts, syntax
from engine.models import Workflow


def code_syntax_problems(definition: dict, node_ids=None, prefix: str = "$.definition") -> list[dict]:
    """Syntax errors of the code steps (all, or those in `node_ids`) as problems with JSON paths."""
    out = []
    for i, node in enumerate(definition.get("nodes") or []):
        if node.get("type") != "action.python" or (node_ids is not None and node.get("id") not in node_ids):
            continue
        for err in syntax.check(str((node.get("parameters") or {}).get("code", ""))):
            out.append({"path": f"{prefix}.nodes[{i}].parameters.code", "node_id": node.get("id"),
                        "message": f"cannot run: {syntax.describe(err)}", "line": err["line"],
                        "column": err["column"]})
    return out


def check_draft_test(user, draft, node_id: str, workflow: Workflow | None = None) -> JsonResponse | None:
    """None when `draft` (the body's `definition`; None: test the saved version) may be tested,
    else the error answer: an invalid definition (400, every problem) or a syntax error in the
    tested code step (400: the editor's test of code that cannot compile is refused)."""
    from designer.api.serializers import validate_definition_field

    if draft is None:
        return None
    if not isinstance(draft, dict):
        return error_json(400, "definition must be a workflow definition (an object)", "$.definition")
    try:
        validate_definition_field(draft, owner=user)
    except DefinitionRejected as exc:
        return JsonResponse({"detail": str(exc.detail), "errors": exc.problems}, status=400)
    problems = code_syntax_problems(draft, {node_id})
    if problems:
        return JsonResponse({"detail": f"Not tested: the code has a syntax error ({problems[0]['message'][12:]})",
                             "errors": problems}, status=400)
    return None


class VersionDiff(APIView):
    """The differences between two saved versions: changed JSON paths (nodes and edges matched
    by id) and a unified diff of the pretty-printed definitions."""

    @extend_schema(parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
                   responses={200: OpenApiResponse(description="{from, to, changes: [{op, path, old?, new?, id?}], truncated, unified}")})
    def get(self, request, pk):
        workflow = get_object_or_404(Workflow, pk=pk, owner=request.user)
        numbers = {}
        for key in ("from", "to"):
            raw = request.query_params.get(key, "")
            if not raw.isdigit():
                return bad_request(f"{key} must be a version number, e.g. ?from=1&to=2", f"$.{key}")
            numbers[key] = int(raw)
        old = get_object_or_404(workflow.versions, number=numbers["from"])
        new = get_object_or_404(workflow.versions, number=numbers["to"])
        body = drafts.diff(old.definition, new.definition, f"v{old.number}", f"v{new.number}")
        return Response({"from": old.number, "to": new.number, **body})


class SyntaxCheckSerializer(serializers.Serializer):
    code = serializers.CharField(allow_blank=True, trim_whitespace=False)

    def validate_code(self, value):
        limit = max_code_chars()
        if len(value) > limit:
            raise serializers.ValidationError(f"is {len(value):,} characters long; the limit is {limit:,} "
                                              "(a code step's code)")
        return value


class PythonSyntaxCheck(APIView):
    """Compile a code step's code with the sandbox's Python version (nothing runs)."""

    @extend_schema(request=SyntaxCheckSerializer,
                   responses={200: OpenApiResponse(description="{python, exact, errors: [{line, column, end_line, end_column, message}]}")})
    def post(self, request):
        s = SyntaxCheckSerializer(data=request.data if isinstance(request.data, dict) else {})
        s.is_valid(raise_exception=True)
        return Response({"python": syntax.runtime_python(), "exact": syntax.exact(),
                         "errors": syntax.check(s.validated_data["code"])})
