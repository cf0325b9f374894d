"""Masking: every occurrence of a secret's value, and of its base64 and URL-encoded forms, becomes
`***NAME***` in text, JSON values and file contents before they are stored or sent.

Base64 of a longer text holding the value (`base64("user:" + value)`, a Basic auth header)
does not contain base64(value): the value's bytes start at one of three offsets in a 3-byte
group, so its encoding is one of three. For each offset the characters that depend on the
value's bytes alone are masked too (when there are at least MIN_CORE of them, so that a short
value does not mask unrelated text).

`Masker(secrets)` is built once per run from {name: value}; `text`, `value` and `data` mask one
string, one JSON value (keys included) and bytes. Longer forms are replaced first, so a value
that contains another secret's value is masked whole.
"""
from __future__ import annotations

import base64
import dataclasses
from urllib.parse import quote, quote_plus


MIN_CORE = 8   # characters of a shifted base64 form that are masked on their own


def shifted_cores(raw: bytes, encode) -> set[str]:
    """The characters of `encode(x + raw + y)` that only `raw` decides, for every length of x
    modulo 3 (base64 encodes 3 bytes as 4 characters)."""
    out = set()
    for shift in (0, 1, 2):
        text = encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
        start = (0, 2, 3)[shift]             # characters that hold bits of the leading bytes
        end = len(text) - (1 if (shift + len(raw)) % 3 else 0)   # the last one may hold bits of y
        core = text[start:end]
        if len(core) >= MIN_CORE:
            out.add(core)
    return out


def forms(value: str) -> set[str]:
    """The encodings of `value` that are masked (the value itself among them)."""
    raw = value.encode("utf-8")
    out = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        out.update({text, text.rstrip("=")})
        out.update(shifted_cores(raw, encode))
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
