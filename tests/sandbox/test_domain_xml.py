"""Domain XML objects: render/parse round trip and the properties the sandbox relies on."""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

from sandbox.libvirt.xml import DomainSpec, has_device, is_readonly_disk, lifecycle_actions


def spec(**kw) -> DomainSpec:
    base = dict(
        name="stepwell-0000042-" + str(uuid.UUID(int=7)), uuid=str(uuid.UUID(int=7)), memory_mib=512,
        kernel="/img/vmlinux", initrd="/img/initrd.cpio", cmdline="console=ttyS0 quiet panic=-1",
        rootfs="/img/rootfs.ext4", channel_path="/run/x/agent.sock", serial_log="/run/x/console.log",
        metadata={"owner": "42", "image": "abc"},
    )
    base.update(kw)
    return DomainSpec(**base)


@pytest.mark.parametrize("kw", [{}, {"accel": "kvm", "memory_mib": 2048}, {"serial_log": None},
                                {"metadata": {}, "vcpus": 2, "machine": "q35"}, {"memory_source": None}])
def test_render_parse_round_trip(kw):
    s = spec(**kw)
    text = s.render()
    assert DomainSpec.parse(text) == s
    assert DomainSpec.parse(DomainSpec.parse(text).render()).render() == text


def test_rendered_domain_has_the_sandbox_shape():
    text = spec().render()
    d = ET.fromstring(text)
    assert d.get("type") == "qemu"
    assert d.findtext("vcpu") == "1"
    assert d.find("memory").get("unit") == "MiB" and d.findtext("memory") == "512"
    assert lifecycle_actions(text) == {"on_poweroff": "destroy", "on_reboot": "destroy",
                                       "on_crash": "destroy"}
    assert is_readonly_disk(text)
    assert d.find("devices/memballoon").get("model") == "none"
    assert not has_device(text, "interface")
    assert not has_device(text, "graphics")
    assert d.findtext("os/kernel") == "/img/vmlinux" and d.find("os/initrd") is not None
    ch = d.find("devices/channel")
    assert ch.get("type") == "unix" and ch.find("target").get("name") == "org.stepwell.agent.0"


def test_parse_accepts_libvirt_expanded_xml():
    # What libvirt hands back: KiB units, expanded machine type, extra devices and aliases.
    text = spec().render()
    d = ET.fromstring(text)
    d.find("memory").set("unit", "KiB")
    d.find("memory").text = str(512 * 1024)
    d.find("os/type").set("machine", "pc-i440fx-7.2")
    ET.SubElement(d.find("devices"), "controller", type="pci", index="0", model="pci-root")
    ET.SubElement(d.find("devices"), "input", type="mouse", bus="ps2")
    back = DomainSpec.parse(ET.tostring(d, encoding="unicode"))
    assert back == spec()


def test_bad_documents_are_rejected():
    with pytest.raises(ValueError):
        DomainSpec.parse("<network/>")
    with pytest.raises(ValueError):
        spec(accel="xen").render()
