"""Drafts and versions compared: a definition's fingerprint (what a step test of an unsaved draft
records), whether a definition equals the saved one, and the differences between two of them."""
from __future__ import annotations

import difflib
import hashlib
import json

MAX_CHANGES = 500   # a diff lists at most this many changed paths (`truncated` says when more)


def canonical(definition) -> str:
    """The definition as JSON with sorted keys and no spaces (key order and layout do not count)."""
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(definition) -> str:
    """SHA-256 (hex) of the canonical JSON: equal definitions have equal hashes."""
    return hashlib.sha256(canonical(definition).encode()).hexdigest()


def same_definition(a, b) -> bool:
    return canonical(a) == canonical(b)


def _key_of(item):
    return item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None


def _changes(old, new, path: str, out: list) -> None:
    if len(out) > MAX_CHANGES:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}"
            if key not in new:
                out.append({"op": "removed", "path": sub, "old": old[key]})
            elif key not in old:
                out.append({"op": "added", "path": sub, "new": new[key]})
            else:
                _changes(old[key], new[key], sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_keys, new_keys = [_key_of(x) for x in old], [_key_of(x) for x in new]
        if all(old_keys) and all(new_keys) and len(set(old_keys)) == len(old) and len(set(new_keys)) == len(new):
            # nodes and edges: matched by id, so a removal does not show as every later item changed
            old_by = dict(zip(old_keys, old))
            for i, item in enumerate(new):
                k = new_keys[i]
                if k in old_by:
                    _changes(old_by[k], item, f"{path}[{i}]", out)
                else:
                    out.append({"op": "added", "path": f"{path}[{i}]", "id": k, "new": item})
            for i, k in enumerate(old_keys):
                if k not in set(new_keys):
                    out.append({"op": "removed", "path": f"{path}[{i}]", "id": k, "old": old[i]})
            return
        for i in range(max(len(old), len(new))):
            if i >= len(new):
                out.append({"op": "removed", "path": f"{path}[{i}]", "old": old[i]})
            elif i >= len(old):
                out.append({"op": "added", "path": f"{path}[{i}]", "new": new[i]})
            else:
                _changes(old[i], new[i], f"{path}[{i}]", out)
        return
    if old != new or type(old) is not type(new):
        out.append({"op": "changed", "path": path, "old": old, "new": new})


def diff(old, new, old_label: str = "old", new_label: str = "new") -> dict:
    """{"changes": [{op: added|removed|changed, path: "$.nodes[1].parameters.code", old?, new?,
    id?}], "truncated": bool, "unified": a unified diff of the pretty-printed JSON}.
    Lists of objects with unique string ids (nodes, edges) are matched by id."""
    changes: list = []
    _changes(old, new, "$", changes)
    pretty = [json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False).splitlines(keepends=True) for d in (old, new)]
    unified = "".join(difflib.unified_diff(pretty[0], pretty[1], old_label, new_label, n=3))
    return {"changes": changes[:MAX_CHANGES], "truncated": len(changes) > MAX_CHANGES, "unified": unified}
