"""Host-side limits on what a sandbox sends back (stdlib only).

The code in a sandbox can write any frame to its channel (it holds it) and any bytes to the
harness's result pipe, so the host checks sizes itself instead of trusting the guest's caps:

- `check_frame(payload)`: before a frame is parsed, its JSON structure (the bytes outside
  strings, where parsing expands most) must fit the result budget; very deep nesting is refused
  by the parser (RecursionError) and reported as a protocol error;
- `enforce(result)`: the result value (bytes as JSON, nesting depth), the number of produced
  files, their total content and their names. An execution over a limit ends `failed` with a
  message naming the limit; nothing is raised.
- `safe_file_name(name)`: a produced file's name kept as a relative path (`a/b.png`), or None
  when it cannot be stored safely (absolute, `..`, empty parts, NUL or control characters).

Limits come from sandbox.config.HostLimits (SANDBOX_MAX_* environment variables).
"""
from __future__ import annotations

import dataclasses
import json
import re
import unicodedata

from sandbox.config import HostLimits

# a JSON string literal (unrolled loop: linear, no backtracking)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
STRUCTURE_SLACK = 1024 * 1024   # keys and small fields of a frame besides the result value
MAX_NAME_CHARS = 255     # engine.models.StepFile.name


class LimitExceeded(ValueError):
    """A frame or result over a host limit (message names the limit)."""


def structure_bytes(payload: bytes) -> int:
    """Bytes of `payload` outside JSON string contents (each string counts 2)."""
    inside = 0
    for m in _STRING.finditer(payload):
        inside += m.end() - m.start() - 2
    return len(payload) - inside


def check_frame(payload: bytes, limits: HostLimits | None = None) -> None:
    """Raise LimitExceeded when a frame's payload is over the frame or structure budget."""
    limits = limits or HostLimits.from_env()
    if len(payload) > limits.max_frame_bytes:
        raise LimitExceeded(f"frame of {len(payload)} bytes exceeds {limits.max_frame_bytes} "
                            "(SANDBOX_MAX_FRAME_BYTES)")
    if len(payload) > limits.max_result_bytes + STRUCTURE_SLACK:
        n = structure_bytes(payload)
        if n > limits.max_result_bytes + STRUCTURE_SLACK:
            raise LimitExceeded(f"frame has {n} bytes of JSON structure, over the result limit "
                                f"of {limits.max_result_bytes} bytes (SANDBOX_MAX_RESULT_BYTES)")


def json_depth(value, stop: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counting no further than `stop`."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if deepest > stop:
                return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def safe_file_name(name) -> str | None:
    """`name` as a safe relative path with "/" separators (control and format characters,
    backslashes and undecodable bytes replaced by "_"), or None when it cannot be kept (not a
    string, empty, too long, absolute, or an empty, "." or ".." part)."""
    if not isinstance(name, str) or not name:
        return None
    name = name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    name = "".join("_" if (unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
                           or ch in "\ufffd\\") else ch for ch in name)
    if len(name) > MAX_NAME_CHARS or name.startswith("/"):
        return None
    if any(p in ("", ".", "..") for p in name.split("/")):
        return None
    return name


def enforce(result, limits: HostLimits | None = None):
    """`result` (a sandbox.contract.ExecutionResult) held to the host limits: over a limit,
    the result value or the extra files are dropped, the status becomes failed and the
    message says which limit."""
    from sandbox.contract import Status

    limits = limits or HostLimits.from_env()
    problems: list[str] = []
    value = result.result
    if value is not None:
        depth = json_depth(value, limits.max_json_depth)
        if depth > limits.max_json_depth:
            problems.append(f"the result is nested deeper than {limits.max_json_depth} levels "
                            "(SANDBOX_MAX_JSON_DEPTH)")
            value = None
        else:
            try:
                size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
            except (ValueError, TypeError, RecursionError):
                size, value = 0, None
                problems.append("the result is not strict JSON")
            if size > limits.max_result_bytes:
                problems.append(f"the result is {size} bytes, over the limit of "
                                f"{limits.max_result_bytes} (SANDBOX_MAX_RESULT_BYTES)")
                value = None
    files = []
    refused = 0
    seen: set[str] = set()
    budget = limits.max_file_bytes_total
    over_budget = False
    for f in result.files:
        name = safe_file_name(f.name)
        if name is None or name in seen:
            refused += 1
            continue
        seen.add(name)
        if len(files) >= limits.max_files:
            problems.append(f"the code produced more than {limits.max_files} files "
                            "(SANDBOX_MAX_FILES); the rest were dropped")
            break
        content = f.content
        if content is not None:
            if len(content) > budget:
                over_budget = True
                content = None
            else:
                budget -= len(content)
        if content is not f.content or name != f.name:
            f = dataclasses.replace(f, name=name, content=content,
                                    truncated=f.truncated or content is None)
        files.append(f)
    if over_budget:
        problems.append(f"produced files exceed {limits.max_file_bytes_total} bytes in total "
                        "(SANDBOX_MAX_FILE_BYTES_TOTAL); the content of the rest was dropped")
    if refused:
        problems.append(f"{refused} produced file name(s) refused (absolute, '..', empty parts "
                        "or control characters)")
    if not problems and all(a is b for a, b in zip(files, result.files)) \
            and len(files) == len(result.files):
        return result
    message = "; ".join(p for p in [result.message, *problems] if p)
    status = result.status
    if problems and status == Status.SUCCEEDED:
        status = Status.FAILED
    return dataclasses.replace(result, status=status, result=value, files=tuple(files),
                               message=message)
