"""The JSON Schema (Draft 2020-12) of a workflow definition, built from the node registry.

Served at /api/schema/workflow.json. Structural rules live here; graph rules (one trigger,
no cycles, edges that point at real nodes and ports) live in `engine.validation`.
"""
from __future__ import annotations

from functools import lru_cache

from engine.nodes import NODE_TYPES

SCHEMA_ID = "https://stepwell.invalid/schemas/workflow-v1.json"
DEFINITION_VERSION = 1
_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


@lru_cache(maxsize=1)
def workflow_schema() -> dict:
    node_rules = [
        {
            "if": {"properties": {"type": {"const": key}}, "required": ["type"]},
            "then": {"properties": {"parameters": {"$ref": f"#/$defs/parameters/{key}"}}},
        }
        for key in NODE_TYPES
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Stepwell workflow definition",
        "description": "Nodes (one of them a trigger), the edges between their ports, and settings.",
        "type": "object",
        "required": ["version", "nodes", "edges"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": DEFINITION_VERSION},
            "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "edges": {"type": "array", "items": {"$ref": "#/$defs/edge"}},
            "settings": {"$ref": "#/$defs/settings"},
        },
        "$defs": {
            "id": {"type": "string", "pattern": _ID_PATTERN},
            "position": {
                "type": "object",
                "required": ["x", "y"],
                "additionalProperties": False,
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            },
            "retry": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                    "backoff_s": {"type": "number", "minimum": 0, "maximum": 3600},
                    "backoff_factor": {"type": "number", "minimum": 1, "maximum": 10},
                },
            },
            "node": {
                "type": "object",
                "required": ["id", "type", "name", "parameters", "position"],
                "additionalProperties": False,
                "properties": {
                    "id": {"$ref": "#/$defs/id"},
                    "type": {"enum": sorted(NODE_TYPES)},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "parameters": {"type": "object"},
                    "position": {"$ref": "#/$defs/position"},
                    "retry": {"$ref": "#/$defs/retry"},
                    "parent": {"$ref": "#/$defs/id"},
                    "notes": {"type": "string", "maxLength": 10_000},
                },
                "allOf": node_rules,
            },
            "edge": {
                "type": "object",
                "required": ["source", "target"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "maxLength": 200},
                    "source": {"$ref": "#/$defs/id"},
                    "source_port": {"type": "string", "default": "out"},
                    "target": {"$ref": "#/$defs/id"},
                    "target_port": {"type": "string", "default": "in"},
                },
            },
            "settings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "variables": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "value"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
                                "value": {"type": "string", "maxLength": 65536},
                            },
                        },
                    },
                    "allowed_hosts": {"type": "array", "items": {"type": "string", "maxLength": 253}},
                    "secrets": {  # names of the owner's secrets (governance) this workflow uses
                        "type": "array", "maxItems": 200, "uniqueItems": True,
                        "items": {"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]{0,127}$"},
                    },
                    "default_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
                    "default_memory_mib": {"type": "integer", "minimum": 128, "maximum": 8192},
                    # code steps: a fresh VM per execution, or VMs reused across executions of
                    # this workflow version and owner (each in a fresh process, cleaned between)
                    "isolation": {"enum": ["execution", "workflow"], "default": "execution"},
                },
            },
            "parameters": {key: t.parameters for key, t in NODE_TYPES.items()},
        },
    }
