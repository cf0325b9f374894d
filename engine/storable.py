"""What a step records, made storable on every supported database: NUL (U+0000) in text becomes
U+FFFD. PostgreSQL's text and jsonb cannot hold NUL (SQLite can), and code prints, returns and
reads whatever it likes; without this a run that passes on SQLite fails on PostgreSQL with an
internal error and leaves its step running. File contents are bytes and keep every byte."""
from __future__ import annotations

import dataclasses

NUL, REPLACEMENT = "\x00", "\ufffd"


def text(s):
    """`s` with each NUL replaced (anything that is not a str is returned as it is)."""
    return s.replace(NUL, REPLACEMENT) if isinstance(s, str) and NUL in s else s


def value(v):
    """A JSON value with NUL replaced in every string, keys included."""
    if isinstance(v, str):
        return text(v)
    if isinstance(v, dict):
        return {text(k): value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    return v


def outcome(o):
    """A step Outcome (engine.steps.Outcome) whose output, stdout, stderr, error and sandbox
    metadata hold no NUL."""
    return dataclasses.replace(o, output=value(o.output), stdout=text(o.stdout), stderr=text(o.stderr),
                               error=text(o.error), sandbox=value(o.sandbox) if o.sandbox else o.sandbox)
