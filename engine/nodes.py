"""The node types a workflow may contain: keys, labels, ports and parameter schemas.

One registry shared by the definition schema, validation, the canvas palette (served as JSON)
and, later, the step executors. Keys are namespaced (`trigger.*`, `action.*`, `control.*`) and
stored in definitions, so they are never renamed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine import response_policy

MAX_TIMEOUT_S = 600
MAX_MEMORY_MIB = 8192

_MAPPING_NOTE = "Any string may contain {{ expressions }} referring to the trigger or earlier steps."


@dataclass(frozen=True)
class NodeType:
    key: str
    label: str
    category: str                       # "trigger", "action" or "control"
    description: str
    parameters: dict                    # JSON Schema of the node's `parameters`
    outputs: tuple[str, ...] = ("out",)  # output port names; () for terminal nodes
    inputs: tuple[str, ...] = ("in",)    # input port names; () for triggers
    defaults: dict = field(default_factory=dict)
    icon: str = ""

    @property
    def is_trigger(self) -> bool:
        return self.category == "trigger"

    def to_dict(self) -> dict:
        return {
            "key": self.key, "label": self.label, "category": self.category,
            "description": self.description, "inputs": list(self.inputs),
            "outputs": list(self.outputs), "defaults": self.defaults,
            "parameters_schema": self.parameters, "icon": self.icon,
        }


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}
# A hook's reply is served on the app's origin: only the headers engine.response_policy allows.
# ("errorMessage" is what engine.validation reports instead of the pattern that failed.)
_RESPONSE_HEADERS = {
    "type": "object", "maxProperties": response_policy.MAX_HEADERS,
    "propertyNames": {"allOf": [
        {"not": {"pattern": response_policy.NOT_TOKEN_PATTERN},
         "errorMessage": "{instance!r} is not a valid header name"},
        {"pattern": response_policy.NAME_PATTERN,
         "errorMessage": "{instance!r} is not a header a hook may send (never Set-Cookie, Content-Security-Policy, "
                         "hop-by-hop or proxy headers; allowed: " + ", ".join(response_policy.ALLOWED)
                         + ", and X-... headers)"},
    ]},
    "additionalProperties": {"type": "string", "maxLength": response_policy.MAX_VALUE_CHARS, "allOf": [
        {"not": {"pattern": response_policy.VALUE_FORBIDDEN_PATTERN},
         "errorMessage": "a header value may not contain a line break or NUL"}]},
}
_HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

NODE_TYPES: dict[str, NodeType] = {
    t.key: t
    for t in [
        NodeType(
            "trigger.manual", "Manual trigger", "trigger",
            "Starts a run from the designer or the API with a JSON payload.",
            _obj({"sample_payload": {"description": "Example payload used for step tests."}}),
            inputs=(), icon="▶",
        ),
        NodeType(
            "trigger.http", "HTTP request trigger", "trigger",
            "Starts a run when JSON is POSTed to the workflow's secret URL.",
            _obj({
                "method": {"enum": ["POST", "PUT", "GET"], "default": "POST"},
                "response_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
                "sample_payload": {"description": "Example JSON body, used for step tests and the panel's curl line."},
            }),
            inputs=(), defaults={"method": "POST"}, icon="⇣",
        ),
        NodeType(
            "trigger.schedule", "Schedule trigger", "trigger",
            "Starts a run on a cron schedule.",
            _obj({
                "cron": {"type": "string", "minLength": 9, "maxLength": 200,
                         "description": "Five-field cron expression, e.g. '*/15 * * * *'."},
                "timezone": {"type": "string", "maxLength": 64},
            }, required=("cron",)),
            inputs=(), defaults={"cron": "0 * * * *"}, icon="⏱",
        ),
        NodeType(
            "action.python", "Execute Python Code", "action",
            "Runs Python in a single-use VM. Inputs are available as the dict `inputs`; "
            "set `result` (or print JSON as the last line) to produce the output.",
            _obj({
                "code": {"type": "string", "maxLength": 200_000},
                "inputs": {"type": "object", "description": _MAPPING_NOTE},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S},
                "memory_mib": {"type": "integer", "minimum": 128, "maximum": MAX_MEMORY_MIB},
                "allowed_hosts": {
                    "type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 253},
                    "description": "Narrows the workflow's settings.allowed_hosts for this step's code "
                                   "(each entry must be covered by the workflow's list); absent: the "
                                   "workflow's list applies.",
                },
            }, required=("code",)),
            defaults={"code": "# `inputs` holds the mapped inputs\nresult = {\"ok\": True}\n", "inputs": {}},
            icon="🐍",
        ),
        NodeType(
            "action.http", "HTTP call", "action",
            "Calls an HTTP endpoint on the workflow's allow-list.",
            _obj({
                "method": {"enum": _HTTP_METHODS},
                "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                "headers": _HEADERS,
                "body": {"description": _MAPPING_NOTE},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
            }, required=("method", "url")),
            defaults={"method": "GET", "url": "https://example.com/"}, icon="🌐",
        ),
        NodeType(
            "action.agent", "AI agent", "action",
            "Asks a chat model (a model connection staff configured) to answer the prompt; the model "
            "may run Python in a sandbox session kept for the step. Output: {answer, turns}.",
            _obj({
                "connection": {"type": "string", "minLength": 1, "maxLength": 100,
                               "description": "The name of a model connection (OpenAI-compatible endpoint)."},
                "system_prompt": {"type": "string", "maxLength": 200_000, "description": _MAPPING_NOTE},
                "prompt": {"type": "string", "minLength": 1, "maxLength": 200_000, "description": _MAPPING_NOTE},
                "max_turns": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8,
                              "description": "Model calls at most; the step fails when the model still "
                                             "asks to run code after that many."},
                "model_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300,
                                    "description": "Longest wait for one model answer (default 60)."},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S,
                              "description": "Time limit of each code execution."},
                "memory_mib": {"type": "integer", "minimum": 128, "maximum": MAX_MEMORY_MIB},
                "allowed_hosts": {
                    "type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 253},
                    "description": "Hosts the model's code may reach (each covered by the workflow's "
                                   "settings.allowed_hosts); absent: none. The model endpoint itself must "
                                   "be on the workflow's settings.allowed_hosts.",
                },
            }, required=("connection", "prompt")),
            defaults={"connection": "", "system_prompt": "You are a helpful data analyst. Use the "
                      "execute_python tool to compute answers.", "prompt": "", "max_turns": 8},
            icon="✦",
        ),
        NodeType(
            "control.condition", "Condition", "control",
            "Follows the `true` or the `false` branch; the other branch is skipped.",
            _obj({
                "left": {"description": _MAPPING_NOTE},
                "operator": {"enum": ["==", "!=", ">", ">=", "<", "<=", "contains",
                                      "not_contains", "is_empty", "is_not_empty", "is_true"]},
                "right": {},
            }, required=("left", "operator")),
            outputs=("true", "false"), defaults={"left": "", "operator": "==", "right": ""},
            icon="◇",
        ),
        NodeType(
            "control.foreach", "For each", "control",
            "Runs the steps on its `each` branch once per item of an array, then continues "
            "on `done` with the collected outputs.",
            _obj({
                "items": {"description": "An array, usually a {{ mapping }}."},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 32},
            }, required=("items",)),
            outputs=("each", "done"), defaults={"items": "", "concurrency": 4}, icon="↻",
        ),
        NodeType(
            "action.compose", "Compose", "action",
            "Builds a JSON value from mappings.",
            _obj({"value": {"description": _MAPPING_NOTE}}, required=("value",)),
            defaults={"value": {}}, icon="{}",
        ),
        NodeType(
            "action.response", "Response", "action",
            "Replies to the HTTP request that started the run.",
            _obj({
                "status_code": {"type": "integer", "minimum": 100, "maximum": 599},
                "headers": _RESPONSE_HEADERS,
                "body": {"description": _MAPPING_NOTE},
            }) | {
                "if": {"required": ["status_code"], "properties": {"status_code": {"minimum": 300, "maximum": 399}}},
                "else": {"properties": {"headers": {"propertyNames": {
                    "not": {"pattern": response_policy.LOCATION_PATTERN},
                    "errorMessage": "{instance!r} is only sent with a 3xx status_code"}}}},
            },
            outputs=(), defaults={"status_code": 200, "body": {}}, icon="↩",
        ),
    ]
}


def get(key: str) -> NodeType | None:
    return NODE_TYPES.get(key)
