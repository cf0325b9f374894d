"""Cloning a libvirt save file under a new name and UUID (pool identities), on a synthetic file."""
from __future__ import annotations

import struct
import uuid

import pytest

from sandbox.libvirt.pool import SAVE_HEADER, SAVE_MAGIC, SaveFileError, SaveStore, clone_save, read_save_xml


def make_save(path, name, uid, payload=b"\x00QEMU-STREAM" * 1000):
    xml = f"<domain type='qemu'>\n  <name>{name}</name>\n  <uuid>{uid}</uuid>\n</domain>\n".encode()
    data = xml + b"\0" + b"<qemuMigration/>\0"
    head = SAVE_HEADER.pack(SAVE_MAGIC, 2, len(data), 1, 0, len(xml) + 1)
    path.write_bytes(head + data + payload)
    return head, data, payload


def test_clone_rewrites_name_and_uuid_in_place(tmp_path):
    old_u, new_u = str(uuid.uuid4()), str(uuid.uuid4())
    old_n, new_n = f"stepwell-0000001-001-{old_u}", f"stepwell-0000002-003-{new_u}"
    src = tmp_path / "t.save"
    head, data, payload = make_save(src, old_n, old_u)
    dest = tmp_path / "c.save"
    clone_save(src, dest, old_u, new_u, old_n, new_n)
    raw = dest.read_bytes()
    assert len(raw) == src.stat().st_size
    assert raw.endswith(payload) and raw[:len(head)] == head
    _off, _len, xml = read_save_xml(dest)
    assert f"<name>{new_n}</name>" in xml and f"<uuid>{new_u}</uuid>" in xml
    assert old_u not in xml
    assert not list(tmp_path.glob("*.partial"))


def test_clone_refuses_length_changes_and_foreign_files(tmp_path):
    u = str(uuid.uuid4())
    src = tmp_path / "t.save"
    make_save(src, "short", u)
    with pytest.raises(SaveFileError):
        clone_save(src, tmp_path / "x", u, str(uuid.uuid4()), "short", "longer-name")
    with pytest.raises(SaveFileError):
        clone_save(src, tmp_path / "x", str(uuid.uuid4()), str(uuid.uuid4()), "short", "other")
    bad = tmp_path / "bad.save"
    bad.write_bytes(b"LibvirtQemudPart" + b"\0" * 200)
    with pytest.raises(SaveFileError):
        read_save_xml(bad)


def test_store_identities_are_reused_after_release(tmp_path):
    store = SaveStore(tmp_path / "tpl", tmp_path / "ids")
    u = str(uuid.uuid4())
    name = f"stepwell-0000001-001-{u}"
    (tmp_path / "tpl").mkdir()
    saved = tmp_path / "tpl" / "fresh.save"
    make_save(saved, name, u)
    store.install_template(512, saved, u, name)
    namer = lambda uid: f"stepwell-0000009-001-{uid}"  # noqa: E731
    a = store.acquire(512, namer)
    b = store.acquire(512, namer)
    assert a.uuid != b.uuid and a.path != b.path and a.name == namer(a.uuid)
    assert store.acquire(128, namer) is None  # no template for that size
    store.release(a)
    c = store.acquire(512, namer)
    assert c is a  # same UUID again, once its domain is gone
    store.release(b, broken=True)
    assert not b.path.exists()
    store.close()
    assert not (tmp_path / "ids").exists()
