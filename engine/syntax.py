"""Python syntax check of a code step, as the sandbox's interpreter compiles it.

The sandbox runs code steps with the Python of its runtimes (runtimes.wheels.PYTHON_VERSION,
3.11; every runtime shares it). When the server's own interpreter is that version, `compile`
here says exactly what the sandbox's `compile` (sandbox/harness.py) will say; otherwise the
answer is `ast.parse(..., feature_version=...)` (close, not exact) and `exact` is False.
Nothing is executed.
"""
from __future__ import annotations

import ast
import sys
import warnings

from runtimes.wheels import PYTHON_VERSION


def runtime_python() -> str:
    return ".".join(map(str, PYTHON_VERSION))


def exact() -> bool:
    return tuple(sys.version_info[:2]) == tuple(PYTHON_VERSION)


def check(code: str) -> list[dict]:
    """The syntax errors of `code` (at most one: Python stops at the first), each
    {line, column, end_line, end_column, message}; lines and columns count from 1."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # SyntaxWarning (e.g. "is" with a literal) is not an error
            if exact():
                compile(code, "<step>", "exec", dont_inherit=True)
            else:
                ast.parse(code, "<step>", feature_version=tuple(PYTHON_VERSION))
    except SyntaxError as exc:   # IndentationError and TabError too
        line = exc.lineno or 1
        column = exc.offset or 1
        end_line = exc.end_lineno or line
        end_column = exc.end_offset if exc.end_offset and (end_line > line or exc.end_offset > column) else column + 1
        return [{"line": line, "column": column, "end_line": end_line, "end_column": end_column,
                 "message": f"{type(exc).__name__}: {exc.msg}"}]
    except ValueError as exc:   # NUL bytes
        return [_whole(f"SyntaxError: {exc}")]
    except (RecursionError, MemoryError):
        return [_whole("SyntaxError: the code is nested too deeply to compile")]
    return []


def _whole(message: str) -> dict:
    return {"line": 1, "column": 1, "end_line": 1, "end_column": 2, "message": message}


def describe(error: dict) -> str:
    """One line for a problem list: 'line 3: IndentationError: expected an indented block ...'."""
    return f"line {error['line']}, column {error['column']}: {error['message']}"
