"""REST API of the allow-list and runtimes (staff only), and the module list for the editor
(any signed-in user). Views parse, call one `runtimes.actions` function, respond."""
from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from runtimes import actions, lib
from runtimes.models import AllowedPackage, Runtime


def _refused(message: str, field: str | None = None) -> ValidationError:
    """A 400 about `field` (or the whole request). Raised, so that the API's one exception handler
    (designer.api.errors, set in REST_FRAMEWORK) gives it the one error shape."""
    return ValidationError({field: [message]} if field else [message])


class PackageSerializer(serializers.ModelSerializer):
    added_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = AllowedPackage
        fields = ["id", "name", "normalized", "specifier", "source", "wheel_filename", "wheel_sha256",
                  "wheel_size", "enabled", "notes", "added_by", "added", "updated"]
        read_only_fields = ["normalized", "source", "wheel_filename", "wheel_sha256", "wheel_size",
                            "added_by", "added", "updated"]


class RuntimeListSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    packages = serializers.SerializerMethodField()

    class Meta:
        model = Runtime
        fields = ["id", "status", "phase", "active", "reason", "requested_by", "image_id", "reused",
                  "size_bytes", "error", "packages", "created", "started", "finished", "activated"]

    def get_packages(self, obj) -> int:
        return len(obj.lock)


class RuntimeSerializer(RuntimeListSerializer):
    class Meta(RuntimeListSerializer.Meta):
        fields = RuntimeListSerializer.Meta.fields + [
            "requested", "lock", "lock_hash", "layer_dir", "image_path", "modules", "log"]


class PackageViewSet(viewsets.ModelViewSet):
    """The allow-list. Adding, changing `enabled`/`specifier` or removing requests a build
    (pass `"rebuild": false` to batch several changes)."""

    serializer_class = PackageSerializer
    permission_classes = [IsAdminUser]
    queryset = AllowedPackage.objects.select_related("added_by")
    pagination_class = None

    def get_queryset(self):
        qs = super().get_queryset()
        q = self.request.query_params.get("search", "").strip()
        if q:
            qs = qs.filter(Q(name__icontains=q) | Q(normalized__icontains=q) | Q(notes__icontains=q))
        if self.request.query_params.get("enabled") in ("true", "false"):
            qs = qs.filter(enabled=self.request.query_params["enabled"] == "true")
        return qs

    def _rebuild(self) -> bool:
        return self.request.data.get("rebuild", True) not in (False, "false", "0", 0)

    def create(self, request, *args, **kwargs):
        data = request.data
        try:
            if "requirement" in data and not data.get("name"):
                name, spec = actions.parse_requirement(str(data["requirement"]))
            else:
                name, spec = str(data.get("name", "")), str(data.get("specifier", "") or "")
            pkg = actions.do_add_package(name, spec, notes=str(data.get("notes", "") or ""),
                                         user=request.user, rebuild=self._rebuild())
        except actions.PackageError as exc:
            raise _refused(str(exc), "name")
        return Response(PackageSerializer(pkg).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        pkg = self.get_object()
        changes = {k: request.data[k] for k in ("enabled", "specifier", "notes") if k in request.data}
        if "enabled" in changes and not isinstance(changes["enabled"], bool):
            raise _refused("enabled must be true or false", "enabled")
        try:
            actions.do_update_package(pkg, user=request.user, rebuild=self._rebuild(), **changes)
        except actions.PackageError as exc:
            raise _refused(str(exc))
        return Response(PackageSerializer(pkg).data)

    def destroy(self, request, *args, **kwargs):
        actions.do_remove_package(self.get_object(), user=request.user,
                                  rebuild=request.query_params.get("rebuild") != "false")
        return Response(status=status.HTTP_204_NO_CONTENT)


class _CappedUpload(FileUploadHandler):
    """Stops reading an upload as soon as it exceeds the wheel size cap."""

    def __init__(self, request=None, cap: int = 0):
        super().__init__(request)
        self.cap = cap
        self.seen = 0

    def receive_data_chunk(self, raw_data, start):
        self.seen += len(raw_data)
        if self.seen > self.cap:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


class WheelUpload(APIView):
    """Upload a `.whl` (multipart field `file`): validated, stored by sha256, put on the list."""

    permission_classes = [IsAdminUser]
    parser_classes = [MultiPartParser, FormParser]

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers.insert(0, _CappedUpload(request, actions.max_wheel_bytes()))
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}, "notes": {"type": "string"}}}},
        responses={201: PackageSerializer})
    def post(self, request):
        upload = request.FILES.get("file")
        if getattr(request._request, "upload_too_large", False):
            cap = actions.max_wheel_bytes()
            size = f"{cap / 1e6:.0f} MB" if cap >= 1e6 else f"{cap / 1e3:.0f} kB"
            raise _refused(f"The file is larger than the {size} limit for wheels.", "file")
        if upload is None:
            raise _refused("Choose a .whl file to upload (form field 'file').", "file")
        try:
            pkg = actions.do_upload_wheel(upload.name, upload.read(), user=request.user,
                                          notes=str(request.data.get("notes", "") or ""),
                                          rebuild=request.data.get("rebuild", "true") != "false")
        except actions.PackageError as exc:
            raise _refused(str(exc), "file")
        return Response(PackageSerializer(pkg).data, status=status.HTTP_201_CREATED)


class RuntimeViewSet(viewsets.ReadOnlyModelViewSet):
    """Runtime builds, newest first; `build` requests one, `activate` rolls back or forward."""

    permission_classes = [IsAdminUser]
    queryset = Runtime.objects.select_related("requested_by")

    def get_serializer_class(self):
        return RuntimeListSerializer if self.action == "list" else RuntimeSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "list":
            actions.reap_stale_builds()
            qs = qs.defer("log", "requested", "modules")
        return qs

    @extend_schema(request=None, responses={202: RuntimeListSerializer})
    @action(detail=False, methods=["post"])
    def build(self, request):
        runtime = actions.do_request_build(user=request.user, reason=str(request.data.get("reason", "") or "requested"))
        return Response(RuntimeListSerializer(runtime).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: RuntimeListSerializer})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        try:
            runtime = actions.do_activate(self.get_object())
        except actions.PackageError as exc:
            raise _refused(str(exc))
        return Response(RuntimeListSerializer(runtime).data)

    @action(detail=False, methods=["get"])
    def active(self, request):
        runtime = actions.active_runtime()
        if runtime is None:
            raise NotFound("No runtime is active yet.")
        return Response(RuntimeSerializer(runtime).data)

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"])
    def diff(self, request):
        """`?from=ID&to=ID`: added, removed and changed distributions (and modules)."""
        try:
            a, b = int(request.query_params["from"]), int(request.query_params["to"])
        except (KeyError, ValueError):
            raise _refused("Give two runtime ids: ?from=ID&to=ID")
        old, new = get_object_or_404(Runtime, pk=a), get_object_or_404(Runtime, pk=b)
        return Response(lib.diff_runtimes(old, new))


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def runtime_modules(request):
    """Module names importable in the sandbox now (active runtime + standard library)."""
    response = Response(lib.modules_payload())
    response["Cache-Control"] = "private, max-age=30"
    return response
