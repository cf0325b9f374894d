"""The instance policy's rules, evaluated on a workflow definition (pure: no database, no engine).

`evaluate(definition, policy, ...)` returns every `Violation` (JSON path, rule name, message).
Rules: `max_timeout`, `max_memory`, `egress_ceiling`, `code_steps_group`, `process_driver`,
`workflow_isolation` (staff may forbid `settings.isolation: workflow`, VMs reused across the
executions of one workflow version and owner).
The egress ceiling lists what `settings.allowed_hosts` entries may name: an entry is covered by a
ceiling entry for the same host (a ceiling entry without a port allows the default ports, and
any port the workflow names only when the ceiling names it too), by `*.domain` for names under
that domain, or by `*` (any host). An empty ceiling allows no host.
"""
from __future__ import annotations

from dataclasses import dataclass

from sandbox.egress.policy import DEFAULT_PORTS, EntryError, parse_entry

# Steps that run code in a sandbox: Python steps, and AI agent steps (a model writes the code).
CODE_NODES = ("action.python", "action.agent")


@dataclass(frozen=True)
class Violation:
    path: str
    rule: str
    message: str
    node_id: str | None = None

    def to_dict(self) -> dict:
        d = {"path": self.path, "rule": self.rule, "message": self.message}
        if self.node_id:
            d["node_id"] = self.node_id
        return d


def ceiling_errors(entries) -> list[str]:
    """Messages for ceiling entries that are not host, host:port, *.domain or *."""
    errors = []
    for entry in entries or ():
        if str(entry).strip() == "*":
            continue
        try:
            parse_entry(entry)
        except EntryError as exc:
            errors.append(str(exc))
    return errors


def _ports(port: int | None) -> set[int]:
    return {port} if port is not None else set(DEFAULT_PORTS)


def covered(entry: str, ceiling) -> bool:
    """True when the allow-list `entry` is within the `ceiling` entries."""
    try:
        host, port = parse_entry(entry)
    except EntryError:
        return False
    for limit in ceiling or ():
        if str(limit).strip() == "*":
            return True
        try:
            chost, cport = parse_entry(limit)
        except EntryError:
            continue
        if not _ports(port) <= _ports(cport):
            continue
        if chost == host:
            return True
        if chost.startswith("*."):
            suffix = chost[1:]                       # ".example.com"
            name = host[1:] if host.startswith("*.") else "." + host
            if name.endswith(suffix) and len(name) > len(suffix):
                return True
    return False


def evaluate(definition: dict, policy, *, may_add_code: bool = True, new_code_nodes=None,
             driver: str | None = None) -> list[Violation]:
    """Every rule of `policy` (a governance.policies.PolicyValues) that `definition` breaks.

    `may_add_code`: the author (at save) or the owner (at run) is allowed to have code steps;
    `new_code_nodes`: at save, the ids of code nodes added or changed (None: every code node);
    `driver`: at run, the sandbox driver code steps would use.
    """
    out: list[Violation] = []
    s = definition.get("settings") or {}
    limits = (("max_timeout", "timeout_s", policy.max_timeout_s, "s"),
              ("max_memory", "memory_mib", policy.max_memory_mib, " MiB"))
    for rule, key, limit, unit in limits:
        value = s.get(f"default_{key}")
        if limit is not None and isinstance(value, (int, float)) and value > limit:
            out.append(Violation(f"$.settings.default_{key}", rule,
                                 f"{value:g}{unit} is above the instance policy's {rule} of {limit}{unit}"))
    has_code = False
    for i, node in enumerate(definition.get("nodes") or []):
        if node.get("type") not in CODE_NODES:
            continue
        has_code = True
        params = node.get("parameters") or {}
        for rule, key, limit, unit in limits:
            value = params.get(key)
            if limit is not None and isinstance(value, (int, float)) and value > limit:
                out.append(Violation(f"$.nodes[{i}].parameters.{key}", rule,
                                     f"{value:g}{unit} is above the instance policy's {rule} of {limit}{unit}",
                                     node.get("id")))
        if not may_add_code and (new_code_nodes is None or node.get("id") in new_code_nodes):
            out.append(Violation(f"$.nodes[{i}]", "code_steps_group",
                                 f"only members of the group {policy.code_steps_group!r} may add or change "
                                 "steps that run code (Python or AI agent steps; instance policy)",
                                 node.get("id")))
    for j, entry in enumerate(s.get("allowed_hosts") or []):
        if not covered(entry, policy.egress_ceiling):
            what = ("no host is allowed: the instance policy's egress ceiling is empty"
                    if not policy.egress_ceiling else "it is outside the instance policy's egress ceiling")
            out.append(Violation(f"$.settings.allowed_hosts[{j}]", "egress_ceiling", f"{entry!r}: {what}"))
    if s.get("isolation") == "workflow" and not getattr(policy, "allow_workflow_isolation", True):
        out.append(Violation("$.settings.isolation", "workflow_isolation",
                             "the instance policy forbids workflow isolation (VMs reused across "
                             "executions); use \"execution\""))
    if has_code and driver == "process" and not policy.allow_process_driver:
        out.append(Violation("$.nodes", "process_driver",
                             "the instance policy forbids the process driver, which would run these code steps"))
    return out


def _code_of(node: dict):
    """What makes a code node's code: a Python step's code; an agent step's parameters (its
    prompts and connection decide the code the model writes)."""
    params = node.get("parameters") or {}
    return params.get("code") if node.get("type") == "action.python" else params


def changed_code_nodes(definition: dict, previous: dict | None) -> set[str]:
    """Ids of code nodes of `definition` that are new or whose code differs from `previous`."""
    before = {n.get("id"): _code_of(n) for n in (previous or {}).get("nodes") or [] if n.get("type") in CODE_NODES}
    return {n.get("id") for n in definition.get("nodes") or [] if n.get("type") in CODE_NODES
            and (n.get("id") not in before or before[n.get("id")] != _code_of(n))}
