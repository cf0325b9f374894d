"""Validates a workflow definition: JSON Schema first, then graph rules.

`validate_definition(doc)` returns a list of `Problem`s, each naming the JSON path of the
offending value (`$.nodes[2].parameters.code`), so the API can answer 400 with all of them and
the canvas can mark the node they belong to.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from jsonschema import Draft202012Validator

from engine.nodes import NODE_TYPES
from engine.schema import workflow_schema


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    node_id: str | None = None

    def to_dict(self) -> dict:
        d = {"path": self.path, "message": self.message}
        if self.node_id:
            d["node_id"] = self.node_id
        return d


class DefinitionInvalid(ValueError):
    """Raised by `check_definition` with every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = workflow_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _message(error) -> str:
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if custom:  # a schema's own wording (e.g. the Response node's header rules in engine.nodes)
        return custom.format(instance=error.instance)
    if error.validator == "enum" and list(error.path)[-1:] == ["type"] and len(error.path) == 3:
        return f"unknown node type {error.instance!r}; known types: {', '.join(sorted(NODE_TYPES))}"
    if error.validator == "maxLength" and isinstance(error.instance, str):   # never echo a huge value
        return (f"is {len(error.instance):,} characters long; the limit is {error.validator_value:,}"
                + (" (a code step's code)" if list(error.path)[-1:] == ["code"] else ""))
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are", "unknown field(s):").replace(
            "Additional properties is", "unknown field(s):")
    return error.message


def _node_id_at(doc, path) -> str | None:
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "nodes" and isinstance(parts[1], int):
        try:
            node_id = doc["nodes"][parts[1]].get("id")
            return node_id if isinstance(node_id, str) else None
        except (IndexError, AttributeError, KeyError, TypeError):
            return None
    return None


def _schema_problems(doc) -> list[Problem]:
    problems = []
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(map(str, e.path)), e.message))
    for err in errors:
        if err.validator in ("allOf", "if"):
            continue
        problems.append(Problem(err.json_path, _message(err), _node_id_at(doc, err.path)))
    return problems


def _find_cycle(adj: dict[str, list[str]]) -> list[str] | None:
    """Return one cycle (as a list of node ids) if the directed graph has any."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in adj}
    parent: dict[str, str] = {}
    for start in adj:
        if color[start] != WHITE:
            continue
        stack = [(start, iter(adj[start]))]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
            elif color.get(nxt) == GREY:
                cycle = [nxt]
                cur = node
                while cur != nxt:
                    cycle.append(cur)
                    cur = parent[cur]
                return list(reversed(cycle))
            elif color.get(nxt) == WHITE:
                parent[nxt] = node
                color[nxt] = GREY
                stack.append((nxt, iter(adj[nxt])))
    return None


def _graph_problems(doc: dict, max_nodes: int) -> list[Problem]:
    problems: list[Problem] = []
    nodes = doc["nodes"]
    if len(nodes) > max_nodes:
        problems.append(Problem("$.nodes", f"too many nodes: {len(nodes)} (limit {max_nodes})"))
    by_id: dict[str, dict] = {}
    for i, node in enumerate(nodes):
        if node["id"] in by_id:
            problems.append(Problem(f"$.nodes[{i}].id", f"duplicate node id {node['id']!r}", node["id"]))
        else:
            by_id[node["id"]] = node
    triggers = [n for n in nodes if NODE_TYPES[n["type"]].is_trigger]
    if len(triggers) != 1:
        problems.append(Problem(
            "$.nodes",
            "a workflow needs exactly one trigger node" if not triggers
            else f"a workflow has exactly one trigger, found {len(triggers)}: "
                 + ", ".join(repr(t["id"]) for t in triggers),
        ))
    for i, node in enumerate(nodes):
        parent = node.get("parent")
        if parent is not None:
            p = by_id.get(parent)
            if p is None or p["type"] != "control.foreach":
                problems.append(Problem(f"$.nodes[{i}].parent",
                                        f"parent {parent!r} is not a For each node", node["id"]))
    adj: dict[str, list[str]] = {nid: [] for nid in by_id}
    seen_edges: set[tuple] = set()
    for i, edge in enumerate(doc["edges"]):
        src, dst = edge["source"], edge["target"]
        sport, dport = edge.get("source_port", "out"), edge.get("target_port", "in")
        ok = True
        for end, nid in (("source", src), ("target", dst)):
            if nid not in by_id:
                problems.append(Problem(f"$.edges[{i}].{end}",
                                        f"edge {end} {nid!r} is not a node of this workflow"))
                ok = False
        if not ok:
            continue
        stype, dtype = NODE_TYPES[by_id[src]["type"]], NODE_TYPES[by_id[dst]["type"]]
        if sport not in stype.outputs:
            problems.append(Problem(
                f"$.edges[{i}].source_port",
                f"{stype.label} node {src!r} has no output {sport!r}"
                + (f" (outputs: {', '.join(stype.outputs)})" if stype.outputs else " (it has no outputs)"),
                src))
            ok = False
        if dport not in dtype.inputs:
            problems.append(Problem(
                f"$.edges[{i}].target_port",
                f"{dtype.label} node {dst!r} has no input {dport!r}"
                + (" (a trigger cannot have incoming edges)" if dtype.is_trigger else ""),
                dst))
            ok = False
        if src == dst:
            problems.append(Problem(f"$.edges[{i}]", f"edge connects node {src!r} to itself", src))
            ok = False
        key = (src, sport, dst, dport)
        if key in seen_edges:
            problems.append(Problem(f"$.edges[{i}]", "duplicate edge", src))
            ok = False
        seen_edges.add(key)
        if ok:
            adj[src].append(dst)
    cycle = _find_cycle(adj)
    if cycle:
        problems.append(Problem("$.edges", "edges form a cycle: " + " → ".join(cycle + cycle[:1]),
                                cycle[0]))
    return problems


def validate_definition(doc, max_nodes: int = 1000, max_bytes: int | None = None) -> list[Problem]:
    """All problems of `doc` (a parsed JSON value); empty when it is a valid definition."""
    if max_bytes is not None:
        size = len(json.dumps(doc, separators=(",", ":")).encode())
        if size > max_bytes:
            return [Problem("$", f"definition is {size} bytes; the limit is {max_bytes}")]
    problems = _schema_problems(doc)
    if problems:
        return problems
    problems = _graph_problems(doc, max_nodes) + _settings_problems(doc) + _cap_problems(doc)
    if problems:
        return problems
    return _nesting_problems(doc) + _mapping_problems(doc)


def foreach_depth(graph, node_id: str) -> int:
    """How many For eaches enclose `node_id`, itself included when it is one (a top-level For
    each is 1 deep, one in its body 2). `graph` is an engine.graph.Graph of a valid definition."""
    depth = 1 if graph.nodes[node_id]["type"] == "control.foreach" else 0
    seen = {node_id}
    owner = graph.owner.get(node_id)
    while owner is not None and owner not in seen:
        seen.add(owner)
        depth += 1
        owner = graph.owner.get(owner)
    return depth


def _nesting_problems(doc: dict) -> list[Problem]:
    """For eaches nested deeper than STEPWELL_MAX_FOREACH_DEPTH (each item of a loop runs the
    whole inner loop, so work grows as items^depth)."""
    from django.conf import settings

    from engine.graph import Graph

    limit = getattr(settings, "STEPWELL_MAX_FOREACH_DEPTH", 4)
    graph = Graph(doc)
    problems = []
    for i, node in enumerate(doc["nodes"]):
        if node["type"] != "control.foreach":
            continue
        depth = foreach_depth(graph, node["id"])
        if depth > limit:
            problems.append(Problem(f"$.nodes[{i}]", f"For each {node['id']!r} is nested {depth} deep; "
                                                     f"the limit is {limit} (STEPWELL_MAX_FOREACH_DEPTH)",
                                    node["id"]))
    return problems


def _settings_problems(doc: dict) -> list[Problem]:
    """`settings.allowed_hosts` entries the egress policy cannot read, and a code step's
    `allowed_hosts` entries that are unreadable or not covered by the workflow's list (a step may
    narrow the list, never widen it)."""
    from sandbox.egress import EntryError, parse_entry

    problems = []
    workflow_hosts = (doc.get("settings") or {}).get("allowed_hosts") or []
    for i, entry in enumerate(workflow_hosts):
        try:
            parse_entry(entry)
        except EntryError as exc:
            problems.append(Problem(f"$.settings.allowed_hosts[{i}]",
                                    f"{exc}; entries are host, host:port or *.domain"))
    for n, node in enumerate(doc.get("nodes") or []):
        if not isinstance(node, dict) or node.get("type") not in ("action.python", "action.agent"):
            continue
        for i, entry in enumerate((node.get("parameters") or {}).get("allowed_hosts") or []):
            path = f"$.nodes[{n}].parameters.allowed_hosts[{i}]"
            try:
                parse_entry(entry)
            except EntryError as exc:
                problems.append(Problem(path, f"{exc}; entries are host, host:port or *.domain", node.get("id")))
                continue
            if not host_entry_covered(workflow_hosts, entry):
                problems.append(Problem(path, f"{entry!r} is not covered by the workflow's settings.allowed_hosts; "
                                              "a step may narrow that list, never widen it", node.get("id")))
    return problems


# (definition key, settings name of the server's cap, unit) of what a step may ask for; the
# executor lowers a larger value to the cap, so it is refused at save instead of run quietly.
_CAPS = {
    "action.python": (("timeout_s", "STEPWELL_MAX_STEP_TIMEOUT_S", "s"),
                      ("memory_mib", "STEPWELL_MAX_STEP_MEMORY_MIB", " MiB")),
    "action.http": (("timeout_s", "STEPWELL_MAX_HTTP_TIMEOUT_S", "s"),),
    "action.agent": (("timeout_s", "STEPWELL_MAX_STEP_TIMEOUT_S", "s"),
                     ("memory_mib", "STEPWELL_MAX_STEP_MEMORY_MIB", " MiB")),
}
_SETTINGS_CAPS = (("default_timeout_s", "STEPWELL_MAX_STEP_TIMEOUT_S", "s"),
                  ("default_memory_mib", "STEPWELL_MAX_STEP_MEMORY_MIB", " MiB"))


def capped_parameters(node_type: str, schema: dict) -> dict:
    """A node type's parameters schema with each capped value's `maximum` lowered to this
    server's cap (what the palette and the panel show: 128–2048 MiB, not the format's 8192)."""
    from django.conf import settings

    caps = _CAPS.get(node_type)
    if not caps:
        return schema
    out = json.loads(json.dumps(schema))
    for key, setting, _unit in caps:
        spec = out.get("properties", {}).get(key)
        if isinstance(spec, dict):
            cap = getattr(settings, setting)
            spec["maximum"] = min(spec.get("maximum", cap), cap)
    return out


def _cap_problems(doc: dict) -> list[Problem]:
    """Timeouts and memory above this server's caps (STEPWELL_MAX_STEP_TIMEOUT_S,
    STEPWELL_MAX_STEP_MEMORY_MIB, STEPWELL_MAX_HTTP_TIMEOUT_S). The instance policy's lower
    ceilings are checked at save by engine.governance_hooks.check_save."""
    from django.conf import settings

    def over(value, setting: str, unit: str) -> str | None:
        cap = getattr(settings, setting)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > cap:
            return f"{value:g}{unit} is above this server's limit of {cap:g}{unit} ({setting})"
        return None

    problems = []
    s = doc.get("settings") or {}
    for key, setting, unit in _SETTINGS_CAPS:
        message = over(s.get(key), setting, unit)
        if message:
            problems.append(Problem(f"$.settings.{key}", message))
    for i, node in enumerate(doc.get("nodes") or []):
        params = node.get("parameters") or {}
        for key, setting, unit in _CAPS.get(node.get("type"), ()):
            message = over(params.get(key), setting, unit)
            if message:
                problems.append(Problem(f"$.nodes[{i}].parameters.{key}", message, node.get("id")))
    return problems


def host_entry_covered(allowed_hosts, entry: str) -> bool:
    """True when everything the allow-list entry `entry` lets through is also let through by
    `allowed_hosts` (a wildcard only by a wildcard of the same or a parent domain)."""
    from sandbox.egress import EntryError, listed, parse_entry

    try:
        host, port = parse_entry(entry)
    except EntryError:
        return False
    ports = (port,) if port is not None else (80, 443)
    if not host.startswith("*."):
        return all(listed(allowed_hosts, host, p) for p in ports)
    suffix = host[1:]                                       # ".example.com"
    for p in ports:
        ok = False
        for other in allowed_hosts or ():
            try:
                other_host, other_port = parse_entry(other)
            except EntryError:
                continue
            if p not in ((other_port,) if other_port is not None else (80, 443)):
                continue
            if other_host.startswith("*.") and (suffix == other_host[1:] or suffix.endswith(other_host[1:])):
                ok = True
                break
        if not ok:
            return False
    return True


def check_definition(doc, **kwargs) -> None:
    """Raise DefinitionInvalid unless `doc` is valid."""
    problems = validate_definition(doc, **kwargs)
    if problems:
        raise DefinitionInvalid(problems)


def empty_definition() -> dict:
    """A new workflow: one manual trigger."""
    return {
        "version": 1,
        "nodes": [{
            "id": "trigger", "type": "trigger.manual", "name": "Manual trigger",
            "parameters": {}, "position": {"x": 80, "y": 160},
        }],
        "edges": [],
        "settings": {"variables": [], "allowed_hosts": []},
    }


def _mapping_problems(doc: dict) -> list[Problem]:
    """Expressions that do not parse, and references to steps that do not precede the node."""
    from engine.graph import Graph
    from engine.mapping import MappingError, check_syntax, expressions, mapped_parameters, step_references

    graph = Graph(doc)
    problems: list[Problem] = []
    for i, node in enumerate(doc["nodes"]):
        ancestors = None
        try:
            found = list(expressions(mapped_parameters(node), f"$.nodes[{i}].parameters"))
        except MappingError as exc:     # a limit: too many expressions, or one too long
            problems.append(Problem(exc.path, exc.message, node["id"]))
            continue
        for path, expr in found:
            error = check_syntax(expr)
            if error:
                problems.append(Problem(path, error, node["id"]))
                continue
            secret_problem = _secret_problem(doc, node, expr)
            if secret_problem:
                problems.append(Problem(path, secret_problem, node["id"]))
                continue
            for ref in sorted(step_references(expr)):
                if ancestors is None:
                    ancestors = graph.ancestors(node["id"])
                if ref not in graph.nodes:
                    problems.append(Problem(path, f"{{{{ {expr} }}}} refers to step {ref!r}, "
                                                  "which is not a node of this workflow", node["id"]))
                elif ref not in ancestors:
                    problems.append(Problem(path, f"{{{{ {expr} }}}} refers to step {ref!r}, which does "
                                                  f"not run before {node['id']!r}", node["id"]))
    return problems


_SECRETS_ROOT = re.compile(r'(?<![\w."$@])secrets(?![\w"])')


def _secret_problem(doc: dict, node: dict, expr: str) -> str | None:
    """Why an expression's use of `secrets` is refused: only `{{ secrets.NAME }}`, only in an
    HTTP call's parameters, and only for a NAME listed in `settings.secrets`."""
    from engine.mapping import SECRET_REF

    if not _SECRETS_ROOT.search(expr):
        return None
    m = SECRET_REF.fullmatch(expr)
    if not m:
        return "secrets can only be used alone, as {{ secrets.NAME }}"
    if node["type"] != "action.http":
        return ("secrets reach HTTP-call parameters only; code steps read them as environment "
                "variables (os.environ[\"NAME\"])")
    if m.group(1) not in ((doc.get("settings") or {}).get("secrets") or []):
        return f"secret {m.group(1)!r} is not listed in settings.secrets"
    return None
