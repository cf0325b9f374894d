"""The mapping language: `{{ expr }}` inside any parameter string, evaluated with JMESPath.

Namespace: {"trigger": payload, "steps": {node_id: {"output": ..., "status": ...}},
"item": current For each item, "index": its position, "vars": workflow variables}.
A string that is exactly one `{{ expr }}` yields the raw JSON value; mixed text interpolates
each value as a string (JSON for objects/arrays). JMESPath never runs Python on the host.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

import jmespath
from jmespath import exceptions as jp_exc

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.S)
# steps.<id> or steps."<id>" at the start of a path (possibly after other operators)
_STEP_REF = re.compile(r'(?<![\w."])steps\s*\.\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))')
_ROOTS = ("trigger", "steps", "item", "index", "vars")


class MappingError(ValueError):
    """An expression that does not parse or cannot be evaluated; `path` is the parameter's JSON path."""

    def __init__(self, message: str, path: str = "$"):
        self.path = path
        super().__init__(f"{path}: {message}")
        self.message = message


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


def resolve(value, namespace: dict, path: str = "$"):
    """`value` with every {{ expression }} replaced. :raises MappingError:"""
    if isinstance(value, str):
        m = _WHOLE.match(value)
        if m and "{{" not in m.group(1):
            return evaluate(m.group(1), namespace, path)
        if "{{" not in value:
            return value
        return _EXPR.sub(lambda mm: _text(evaluate(mm.group(1), namespace, path)), value)
    if isinstance(value, dict):
        return {k: resolve(v, namespace, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, namespace, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def expressions(value, path: str = "$"):
    """Yield (json_path, expression) for every {{ expression }} in `value`."""
    if isinstance(value, str):
        for m in _EXPR.finditer(value):
            yield path, m.group(1).strip()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from expressions(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from expressions(v, f"{path}[{i}]")


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
