"""The mapping language: `{{ expr }}` inside any parameter string, evaluated with JMESPath.

Namespace: {"trigger": payload, "steps": {node_id: {"output": ..., "status": ...}},
"item": current For each item, "index": its position, "vars": workflow variables}.
A string that is exactly one `{{ expr }}` yields the raw JSON value; mixed text interpolates
each value as a string (JSON for objects/arrays). JMESPath never runs Python on the host.

Scanning is linear: each `{{` pairs with the first `}}` after it. Caps (settings, with defaults):
STEPWELL_MAPPING_MAX_EXPRESSIONS per node, STEPWELL_MAPPING_MAX_EXPRESSION_CHARS per expression,
STEPWELL_MAPPING_MAX_STRING_CHARS per interpolated string. Parameters in VERBATIM are never
templated: a code step's source reaches the sandbox as written; values reach code through `inputs`.

Secrets: `{{ secrets.NAME }}` (exactly that form, in HTTP-call parameters) resolves only when the
namespace has a "secrets" key, which the executor adds for the call alone; without it the text
is kept as written, so what is stored (step inputs) is the template, never the value.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

import jmespath
from jmespath import exceptions as jp_exc

# steps.<id> or steps."<id>" at the start of a path (possibly after other operators)
_STEP_REF = re.compile(r'(?<![\w."])steps\s*\.\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))')
_ROOTS = ("trigger", "steps", "item", "index", "vars", "secrets")
SECRET_REF = re.compile(r"\s*secrets\s*\.\s*([A-Z_][A-Z0-9_]*)\s*")
# Parameters that are never templated, by node type.
VERBATIM = {"action.python": frozenset({"code"})}
DEFAULT_LIMITS = {"STEPWELL_MAPPING_MAX_EXPRESSIONS": 1000, "STEPWELL_MAPPING_MAX_EXPRESSION_CHARS": 2000,
                  "STEPWELL_MAPPING_MAX_STRING_CHARS": 1_000_000}


class MappingError(ValueError):
    """An expression that does not parse or cannot be evaluated; `path` is the parameter's JSON path."""

    def __init__(self, message: str, path: str = "$"):
        self.path = path
        super().__init__(f"{path}: {message}")
        self.message = message


def _limit(name: str) -> int:
    from django.conf import settings

    return getattr(settings, name, DEFAULT_LIMITS[name])


class _Budget:
    """Counts the expressions of one parameters object against STEPWELL_MAPPING_MAX_EXPRESSIONS."""

    def __init__(self):
        self.left = _limit("STEPWELL_MAPPING_MAX_EXPRESSIONS")
        self.chars = _limit("STEPWELL_MAPPING_MAX_EXPRESSION_CHARS")

    def take(self, inner: str, path: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise MappingError(f"more than {_limit('STEPWELL_MAPPING_MAX_EXPRESSIONS')} {{{{ expressions }}}} "
                               "in one node's parameters", path)
        if len(inner) > self.chars:
            raise MappingError(f"an expression of {len(inner)} characters; the limit is {self.chars}", path)


def scan(text: str, path: str = "$", budget: _Budget | None = None) -> list[tuple[int, int, str]]:
    """(start, end, inner text) of each {{ ... }} in `text`, in one left-to-right pass.

    :raises MappingError: more expressions, or a longer one, than the limits allow.
    """
    budget = budget or _Budget()
    found, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return found
        end = text.find("}}", start + 2)
        if end < 0:
            return found
        inner = text[start + 2:end]
        budget.take(inner, path)
        found.append((start, end + 2, inner))
        pos = end + 2


@lru_cache(maxsize=2048)
def _compile(expr: str):
    return jmespath.compile(expr)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def evaluate(expr: str, namespace: dict, path: str = "$"):
    expr = expr.strip()
    if not expr:
        raise MappingError("empty expression {{ }}", path)
    try:
        return _compile(expr).search(namespace)
    except jp_exc.ParseError as exc:
        raise MappingError(f"cannot parse {{{{ {expr} }}}}: {exc.msg if hasattr(exc, 'msg') else exc}", path) from None
    except jp_exc.JMESPathError as exc:
        raise MappingError(f"cannot evaluate {{{{ {expr} }}}}: {exc}", path) from None


def _interpolate(text: str, namespace: dict, path: str, budget: _Budget):
    if "{{" not in text:
        return text
    found = scan(text, path, budget)
    keep = "secrets" not in namespace   # {{ secrets.NAME }} stays a template (see above)
    if len(found) == 1:
        start, end, inner = found[0]
        if not text[:start].strip() and not text[end:].strip() and "{{" not in inner:
            if keep and SECRET_REF.fullmatch(inner):
                return text
            return evaluate(inner, namespace, path)     # exactly one expression: its raw value
    cap = _limit("STEPWELL_MAPPING_MAX_STRING_CHARS")
    parts, size, pos = [], 0, 0
    for start, end, inner in found:
        value = text[start:end] if keep and SECRET_REF.fullmatch(inner) else _text(evaluate(inner, namespace, path))
        for piece in (text[pos:start], value):
            size += len(piece)
            if size > cap:
                raise MappingError(f"the interpolated string is longer than {cap} characters", path)
            parts.append(piece)
        pos = end
    parts.append(text[pos:])
    if size + len(text) - pos > cap:
        raise MappingError(f"the interpolated string is longer than {cap} characters", path)
    return "".join(parts)


def resolve(value, namespace: dict, path: str = "$", _budget: _Budget | None = None):
    """`value` with every {{ expression }} replaced. :raises MappingError:"""
    budget = _budget or _Budget()
    if isinstance(value, str):
        return _interpolate(value, namespace, path, budget)
    if isinstance(value, dict):
        return {k: resolve(v, namespace, f"{path}.{k}", budget) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, namespace, f"{path}[{i}]", budget) for i, v in enumerate(value)]
    return value


def mapped_parameters(node: dict) -> dict:
    """The node's parameters that are templated (all but its type's VERBATIM ones)."""
    params = node.get("parameters") or {}
    verbatim = VERBATIM.get(node.get("type"), ())
    return {k: v for k, v in params.items() if k not in verbatim} if verbatim else params


def resolve_parameters(node: dict, namespace: dict, path: str = "$.parameters") -> dict:
    """A node's parameters with its mapped ones resolved and its VERBATIM ones as written."""
    params = node.get("parameters") or {}
    resolved = resolve(mapped_parameters(node), namespace, path)
    return {k: resolved.get(k, v) for k, v in params.items()}


def expressions(value, path: str = "$", _budget: _Budget | None = None):
    """Yield (json_path, expression) for every {{ expression }} in `value`.

    :raises MappingError: more expressions, or a longer one, than the limits allow.
    """
    budget = _budget or _Budget()
    if isinstance(value, str):
        for _start, _end, inner in scan(value, path, budget):
            yield path, inner.strip()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from expressions(v, f"{path}.{k}", budget)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from expressions(v, f"{path}[{i}]", budget)


def check_syntax(expr: str) -> str | None:
    """An error message when `expr` does not parse, else None."""
    if not expr:
        return "empty expression {{ }}"
    try:
        _compile(expr)
    except jp_exc.JMESPathError as exc:
        return f"cannot parse {{{{ {expr} }}}}: {exc}"
    return None


def step_references(expr: str) -> set[str]:
    """Node ids an expression reads through `steps.<id>`."""
    out = set()
    for m in _STEP_REF.finditer(expr):
        out.add(m.group(1).replace('\\"', '"') if m.group(1) is not None else m.group(2))
    return out


def expression_for(node_id: str, field_path: list) -> str:
    """The mapping text that reads `field_path` of a node's output, e.g. {{ steps.parse.output.total }}."""
    def seg(s):
        if isinstance(s, int):
            return f"[{s}]"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s):
            return "." + s
        return "." + json.dumps(s)
    node = node_id if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", node_id) else json.dumps(node_id)
    return "{{ steps." + node + ".output" + "".join(seg(s) for s in field_path) + " }}"
