"""Secrets in-process: the masker's forms, the key file (0600 from creation, several keys,
rotation keeps tokens readable), the audit events (names only) and the value never leaving."""
from __future__ import annotations

import base64
import os
import stat
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from governance import crypto
from governance.masking import Masker

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("STEPWELL_SECRETS_KEY", raising=False)
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_masker_hides_every_form_in_text_json_and_bytes():
    value = "p@ss word/+?=ü"
    m = Masker({"PW": value, "SHORTER": "p@ss"})
    b64 = base64.b64encode(value.encode()).decode()
    text = f"a {value} b {b64} c {b64.rstrip('=')} d {quote(value, safe='')} e p@ss"
    assert m.text(text) == "a ***PW*** b ***PW*** c ***PW*** d ***PW*** e ***SHORTER***"
    assert m.value({value: [value, 1, {"k": f"x{value}x"}], "n": 42}) == \
        {"***PW***": ["***PW***", 1, {"k": "x***PW***x"}], "n": 42}
    assert Masker({"N": "4242"}).value({"n": 14242}) == {"n": "1***N***"}
    assert m.data(b"file " + value.encode()) == b"file ***PW***"
    assert Masker({}).text(value) == value


@pytest.mark.parametrize("prefix", ["", "u:", "user:", "Bearer "])
@pytest.mark.parametrize("suffix", ["", "!", "?x", " tail"])
def test_base64_of_a_longer_text_holding_the_value_is_masked(prefix, suffix):
    # a Basic auth header is base64("user:" + password): the value sits at any offset of a
    # 3-byte group, so base64(value) is not in it
    value = "s3cr3t-Token/+value"
    m = Masker({"PW": value})
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        whole = enc((prefix + value + suffix).encode()).decode()
        masked = m.text(f"Authorization: Basic {whole}")
        assert "***PW***" in masked, (prefix, suffix, whole)
        # what is left holds only the edge characters shared with the surrounding text: no 4
        # characters in a row of the value's own encoding
        own = enc((prefix + value).encode()).decode()[len(enc(prefix.encode()).decode().rstrip("=")):]
        windows = {own[i:i + 4] for i in range(2, len(own) - 5)}
        assert not any(w in masked for w in windows), masked
    assert Masker({"SHORT": "abc"}).text(base64.b64encode(b"xxabcxx").decode()) == "eHhhYmN4eA=="


def test_the_key_file_is_private_from_creation_and_rotation_keeps_tokens_readable(var_dir):
    token = crypto.encrypt("hello")
    path = var_dir / "secrets_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old = crypto.read_keys()
    new = Fernet.generate_key()
    crypto.write_keys([new, *old])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.decrypt(token) == "hello"                 # old tokens open with the old key
    assert Fernet(new).decrypt(crypto.encrypt("x").encode()) == b"x"   # the newest key encrypts
    crypto.write_keys([new])
    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt(token)


def test_a_bad_key_in_the_environment_is_refused(var_dir, monkeypatch):
    monkeypatch.setenv("STEPWELL_SECRETS_KEY", "not-a-key")
    with pytest.raises(crypto.SecretsKeyError):
        crypto.encrypt("x")
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("STEPWELL_SECRETS_KEY", f"{k1}, {k2}")
    assert Fernet(k1).decrypt(crypto.encrypt("v").encode()) == b"v"
    assert crypto.decrypt(Fernet(k2).encrypt(b"old").decode()) == "old"
    assert not (var_dir / "secrets_key").exists()


def test_rotate_command_re_encrypts_and_audits_names_only(var_dir, alice):
    from governance import secret_actions
    from governance.models import AuditEvent, Secret

    secret_actions.create(alice, "ONE", "value-one-111")
    secret_actions.create(alice, "TWO", "value-two-222")
    secret_actions.update(Secret.objects.get(name="TWO"), "value-two-333", alice)
    before = dict(Secret.objects.values_list("name", "ciphertext"))
    old_keys = crypto.read_keys()
    call_command("secrets_rotate_key", stdout=open(os.devnull, "w"))
    keys = crypto.read_keys()
    assert len(keys) == 1 and keys[0] not in old_keys
    after = {s.name: s for s in Secret.objects.all()}
    assert {n: s.reveal() for n, s in after.items()} == {"ONE": "value-one-111", "TWO": "value-two-333"}
    assert all(after[n].ciphertext != before[n] for n in before)
    secret_actions.delete(after["ONE"], alice)
    events = list(AuditEvent.objects.filter(kind__startswith="secret.").values_list("kind", "payload"))
    assert [k for k, _ in events] == ["secret.created", "secret.created", "secret.updated", "secret.deleted"]
    assert "value-" not in str(events)
    assert secret_actions.values_for(alice.pk, ["TWO", "ONE"]) == ({"TWO": "value-two-333"}, ["ONE"])
