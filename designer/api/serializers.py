"""Serializers: validate and shape API data; they call no actions."""
from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engine.models import Workflow, WorkflowVersion
from designer.api.errors import DefinitionRejected, prefixed
from engine.validation import DefinitionInvalid, check_definition


def validate_definition_field(value, prefix: str = "$.definition", owner=None):
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > settings.MAX_DEFINITION_BYTES:
        raise DefinitionRejected([{
            "path": prefix,
            "message": f"definition is {size} bytes; the limit is {settings.MAX_DEFINITION_BYTES}",
        }])
    try:
        check_definition(value, max_nodes=settings.MAX_DEFINITION_NODES)
    except DefinitionInvalid as exc:
        raise prefixed(exc, prefix) from None
    if owner is not None:   # settings.secrets must name the owner's secrets
        from governance.secret_actions import problems

        missing = problems(owner.pk, value)
        if missing:
            raise DefinitionRejected([{"path": prefix + path[1:], "message": message} for path, message in missing])
    return value


def _owner(serializer):
    request = serializer.context.get("request")
    return getattr(request, "user", None)


class WorkflowSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="head.number", read_only=True, default=None)
    definition = serializers.JSONField(required=False)
    message = serializers.CharField(required=False, write_only=True, max_length=500, allow_blank=True)

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "version", "definition", "message", "created", "updated"]
        read_only_fields = ["id", "version", "created", "updated"]

    def validate_definition(self, value):
        return validate_definition_field(value, owner=_owner(self))

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["definition"] = instance.definition
        return data


class LastRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


class WorkflowListSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="head.number", read_only=True, default=None)
    node_count = serializers.SerializerMethodField()
    trigger = serializers.SerializerMethodField(help_text="The saved version's trigger kind: manual, http, schedule "
                                                          "(null without a trigger)")
    last_run = serializers.SerializerMethodField(help_text="The newest run (not step test): {id, status}, or null")

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "version", "node_count", "trigger", "last_run", "created", "updated"]

    def get_node_count(self, obj) -> int:
        return len((obj.definition or {}).get("nodes", []))

    def get_trigger(self, obj) -> str | None:
        types = [n.get("type", "") for n in (obj.definition or {}).get("nodes", [])]
        return next((t.split(".", 1)[1] for t in types if t.startswith("trigger.")), None)

    @extend_schema_field(LastRunSerializer(allow_null=True))
    def get_last_run(self, obj) -> dict | None:
        run_id = getattr(obj, "last_run_id", None)  # annotated by the list view
        return {"id": run_id, "status": obj.last_run_status} if run_id else None


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ["number", "definition", "author", "message", "restored_from", "created"]


class VersionListSerializer(VersionSerializer):
    class Meta(VersionSerializer.Meta):
        fields = ["number", "author", "message", "restored_from", "created"]


class ImportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["stepwell.workflow/v1"])
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    definition = serializers.JSONField()

    def validate_definition(self, value):
        return validate_definition_field(value, owner=_owner(self))


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField())
