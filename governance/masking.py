"""Masking: every occurrence of a secret's value, and of its base64 and URL-encoded forms, becomes
`***NAME***` in text, JSON values and file contents before they are stored or sent.

`Masker(secrets)` is built once per run from {name: value}; `text`, `value` and `data` mask one
string, one JSON value (keys included) and bytes. Longer forms are replaced first, so a value
that contains another secret's value is masked whole.
"""
from __future__ import annotations

import base64
import dataclasses
from urllib.parse import quote, quote_plus


def forms(value: str) -> set[str]:
    """The encodings of `value` that are masked (the value itself among them)."""
    raw = value.encode("utf-8")
    out = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = enc.decode("ascii")
        out.update({text, text.rstrip("=")})
    return {f for f in out if f}


def _replace_all(s, pairs):
    """`s` (str or bytes) with each (form, mark) pair's form replaced by its mark, in order; `s`
    itself, unchanged, when there is nothing to replace."""
    if not s or not pairs:
        return s
    for form, mark in pairs:
        if form in s:
            s = s.replace(form, mark)
    return s


class Masker:
    def __init__(self, secrets: dict[str, str]):
        pairs = [(form, f"***{name}***") for name, value in secrets.items() if value
                 for form in forms(value)]
        pairs.sort(key=lambda p: len(p[0]), reverse=True)
        self.pairs = pairs
        self.byte_pairs = [(f.encode("utf-8"), m.encode("utf-8")) for f, m in pairs]

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def text(self, s: str) -> str:
        return _replace_all(s, self.pairs)

    def data(self, b: bytes | None) -> bytes | None:
        return _replace_all(b, self.byte_pairs)

    def value(self, v):
        """A JSON value with every string (and key, and number whose text holds a value) masked."""
        if not self.pairs:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            masked = self.text(str(v))
            return v if masked == str(v) else masked
        return v

    def outcome(self, outcome):
        """A step Outcome (engine.steps.Outcome) with its output, stdout, stderr, error, sandbox
        metadata and produced files masked."""
        if not self.pairs:
            return outcome
        files = []
        for f in outcome.files:
            content = self.data(f.content)
            if content is not f.content:
                f = dataclasses.replace(f, content=content, size=len(content))
            files.append(f)
        return dataclasses.replace(
            outcome, output=self.value(outcome.output), stdout=self.text(outcome.stdout),
            stderr=self.text(outcome.stderr), error=self.text(outcome.error),
            sandbox=self.value(outcome.sandbox or {}), files=tuple(files))
