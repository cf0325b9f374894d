"""Encryption at rest for secrets: Fernet tokens under a MultiFernet of the instance's keys.

The keys come from STEPWELL_SECRETS_KEY (comma-separated Fernet keys, newest first) or, when it
is unset, from the file `<var>/secrets_key` (one key a line, newest first), created 0600 with a
fresh key on first use, like the Django secret key. The newest key encrypts; every listed key
decrypts, so a rotation can re-encrypt everything while old tokens stay readable. The file is
re-read when it changes, so processes that started before a rotation read its new tokens.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from designer.env import write_private

_lock = threading.Lock()
_cache: dict = {"stamp": None, "fernet": None}


class SecretsKeyError(RuntimeError):
    """The secrets key is missing, empty or not a Fernet key."""


def key_path() -> Path:
    return Path(settings.VAR_DIR) / "secrets_key"


def from_env() -> bool:
    return bool((os.environ.get("STEPWELL_SECRETS_KEY") or "").strip())


def _parse(raw: str, where: str) -> list[bytes]:
    keys = [k.strip().encode() for k in raw.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise SecretsKeyError(f"{where} holds no key")
    for k in keys:
        try:
            Fernet(k)
        except (ValueError, TypeError):
            raise SecretsKeyError(f"{where} holds a value that is not a Fernet key (32 url-safe base64 bytes)") from None
    return keys


def read_keys() -> list[bytes]:
    """The keys, newest first (creating the key file when neither it nor the variable exists)."""
    env = (os.environ.get("STEPWELL_SECRETS_KEY") or "").strip()
    if env:
        return _parse(env, "STEPWELL_SECRETS_KEY")
    path = key_path()
    if not path.exists():
        write_private(path, Fernet.generate_key().decode() + "\n")
    for _ in range(50):  # another process may have created it a moment ago and be writing it
        raw = path.read_text().strip()
        if raw:
            return _parse(raw, str(path.name))
        time.sleep(0.02)
    raise SecretsKeyError(f"{path.name} in the var folder is empty; delete it only if no secret exists yet")


def _stamp():
    if from_env():
        return ("env", os.environ["STEPWELL_SECRETS_KEY"])
    try:
        st = key_path().stat()
        return ("file", st.st_mtime_ns, st.st_size, st.st_ino)
    except FileNotFoundError:
        return None


def fernet() -> MultiFernet:
    with _lock:
        stamp = _stamp()
        if _cache["fernet"] is None or stamp is None or stamp != _cache["stamp"]:
            _cache["fernet"] = MultiFernet([Fernet(k) for k in read_keys()])
            _cache["stamp"] = _stamp()
        return _cache["fernet"]


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """:raises InvalidToken: no key of the instance opens it."""
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        with _lock:
            _cache["fernet"] = None   # the key file may have changed within the stamp's resolution
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")


def write_keys(keys: list[bytes]) -> None:
    """Replace the key file atomically (a new 0600 file renamed over the old one)."""
    path = key_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    write_private(tmp, "\n".join(k.decode() for k in keys) + "\n")
    os.replace(tmp, path)
    with _lock:
        _cache["fernet"] = None


__all__ = ["InvalidToken", "SecretsKeyError", "decrypt", "encrypt", "fernet", "from_env", "read_keys", "write_keys"]
