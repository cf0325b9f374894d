"""Output schema inference: genson schemas of step outputs, merged across runs, and the
flattened field list the designer's field picker shows."""
from __future__ import annotations

from genson import SchemaBuilder

from engine.mapping import expression_for

MAX_FIELDS = 500


def merge(stored: dict | None, output) -> dict:
    """`stored` (a genson-compatible schema, or None) extended with the schema of `output`."""
    builder = SchemaBuilder()
    if stored:
        builder.add_schema(stored)
    builder.add_object(output)
    return builder.to_schema()


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if isinstance(t, list):
        return t
    if t:
        return [t]
    types = []
    for sub in schema.get("anyOf", []):
        types.extend(_types(sub))
    return types


def _subschemas(schema: dict, key: str) -> list[dict]:
    out = [schema] if key in schema else []
    for sub in schema.get("anyOf", []):
        out.extend(_subschemas(sub, key))
    return out


def fields(node_id: str, schema: dict, prefix: list | None = None, depth: int = 0) -> list[dict]:
    """[{path, expression, type}] for the value and every nested field (arrays via index 0)."""
    prefix = prefix or []
    out = [{
        "path": ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in prefix).replace(".[", "["),
        "expression": expression_for(node_id, prefix),
        "type": "|".join(_types(schema)) or "any",
    }]
    if depth > 8:
        return out
    for obj in _subschemas(schema, "properties"):
        for name, sub in obj["properties"].items():
            out.extend(fields(node_id, sub, prefix + [name], depth + 1))
    for arr in _subschemas(schema, "items"):
        items = arr["items"]
        if isinstance(items, dict):
            out.extend(fields(node_id, items, prefix + [0], depth + 1))
    return out[:MAX_FIELDS]
