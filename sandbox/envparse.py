"""Strict integer parsing of environment variables, shared by the sandbox and the Django settings.

Standard library only: the sandbox package must import without Django.
"""
from __future__ import annotations

import os


def env_int(name: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
    """The integer in `name`, or `default` when unset/empty; ValueError names the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value
