"""Read-only helpers: differences between runtimes, module names for the editor."""
from __future__ import annotations

import sys

from runtimes.models import Runtime

# Standard-library modules Debian ships in separate packages (not in the sandbox's python3).
STDLIB_ABSENT = frozenset({"tkinter", "turtle", "turtledemo", "idlelib", "lib2to3", "distutils",
                           "ensurepip", "venv", "test"})


def diff_locks(old: list[dict], new: list[dict]) -> dict:
    """What changed from lock `old` to lock `new`: added, removed and changed distributions."""
    a = {p["name"]: p for p in old}
    b = {p["name"]: p for p in new}
    added = [{"name": n, "version": b[n]["version"], "requested": b[n].get("requested", False)}
             for n in sorted(set(b) - set(a))]
    removed = [{"name": n, "version": a[n]["version"], "requested": a[n].get("requested", False)}
               for n in sorted(set(a) - set(b))]
    changed = [{"name": n, "from": a[n]["version"], "to": b[n]["version"],
                "rebuilt": a[n]["version"] == b[n]["version"]}
               for n in sorted(set(a) & set(b))
               if a[n]["version"] != b[n]["version"] or a[n].get("sha256") != b[n].get("sha256")]
    unchanged = sum(1 for n in set(a) & set(b) if a[n]["version"] == b[n]["version"]
                    and a[n].get("sha256") == b[n].get("sha256"))
    return {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}


def diff_runtimes(old: Runtime, new: Runtime) -> dict:
    d = diff_locks(old.lock, new.lock)
    old_mods, new_mods = set(old.modules), set(new.modules)
    d.update({"from": old.pk, "to": new.pk,
              "modules_added": sorted(new_mods - old_mods), "modules_removed": sorted(old_mods - new_mods)})
    return d


def stdlib_modules() -> list[str]:
    """Top-level standard-library modules importable in the sandbox's CPython 3.11."""
    return sorted(m for m in sys.stdlib_module_names if not m.startswith("_") and m not in STDLIB_ABSENT)


def modules_payload() -> dict:
    """What the editor needs to complete and check imports (see static/designer/imports.js)."""
    rt = Runtime.objects.filter(active=True).only("id", "modules", "lock", "activated").first()
    return {
        "runtime_id": rt.pk if rt else None,
        "activated": rt.activated.isoformat() if rt and rt.activated else None,
        "packages": list(rt.modules) if rt else [],
        "distributions": [{"name": p["name"], "version": p["version"]} for p in rt.lock] if rt else [],
        "stdlib": stdlib_modules(),
    }
