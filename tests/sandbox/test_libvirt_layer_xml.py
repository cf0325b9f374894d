"""The package layer in the libvirt domain XML (once the integration patch is applied)."""
from __future__ import annotations

import dataclasses

import pytest

from sandbox.libvirt.xml import DomainSpec, is_readonly_disk

if "packages" not in {f.name for f in dataclasses.fields(DomainSpec)}:
    pytest.skip("DomainSpec has no package layer disk yet (integration pending)", allow_module_level=True)


def spec(**kw):
    base = dict(name="stepwell-0000001-001-x", uuid="00000000-0000-4000-8000-000000000001", memory_mib=512,
                kernel="/k", initrd="/i", cmdline="console=ttyS0", rootfs="/root.ext4", channel_path="/c.sock")
    base.update(kw)
    return DomainSpec(**base)


def test_the_layer_image_is_a_second_read_only_disk():
    s = spec(packages="/cache/layers/abc/packages.img")
    xml = s.render()
    assert "<target dev=\"vdb\" bus=\"virtio\" />" in xml or 'dev="vdb"' in xml
    assert is_readonly_disk(xml)
    assert DomainSpec.parse(xml) == s


def test_no_layer_no_second_disk():
    s = spec()
    assert 'dev="vdb"' not in s.render()
    assert DomainSpec.parse(s.render()).packages is None
