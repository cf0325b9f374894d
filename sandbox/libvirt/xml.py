"""Domain XML for sandbox VMs as plain objects: render() and parse() only, no libvirt calls.

One `DomainSpec` describes one single-use VM: direct kernel boot, 1 vCPU, memory = the
limit, no balloon, no NIC, the shared root image read-only, one virtio-serial channel to the
guest agent and a second one for code egress (unix sockets on the host, side by side), and
`destroy` on power-off, reboot and crash.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from sandbox.protocol import CHANNEL_NAME, EGRESS_CHANNEL_NAME

NS = "https://stepwell.dev/xmlns/sandbox/1"
EMULATOR = "/usr/bin/qemu-system-x86_64"


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    memory_mib: int
    kernel: str
    initrd: str
    cmdline: str
    rootfs: str
    channel_path: str
    packages: str | None = None      # ext4 image of the package layer, attached read-only as vdb
    accel: str = "qemu"              # libvirt domain type: "qemu" (TCG) or "kvm"
    # Guest CPU model. QEMU's default (qemu64) lacks SSSE3/SSE4.x/POPCNT, which NumPy 2.x
    # wheels require (x86-64-v2 baseline): the import dies with SIGILL. Nehalem is x86-64-v2.
    cpu_model: str | None = "Nehalem"
    vcpus: int = 1
    channel_name: str = CHANNEL_NAME
    egress_path: str | None = None   # unix socket of the egress port (sandbox/egress/mux.py)
    serial_log: str | None = None    # file receiving the guest console, or None
    machine: str = "pc"
    # <memoryBacking><source type=...>: None = anonymous RAM. (memfd was tried to avoid
    # transparent huge pages, but a restore then makes all guest RAM resident.)
    memory_source: str | None = None
    emulator: str = EMULATOR
    metadata: dict[str, str] = field(default_factory=dict)  # stepwell:sandbox attributes

    def with_(self, **changes) -> "DomainSpec":
        return replace(self, **changes)

    # ------------------------------------------------------------------------- render ---
    def render(self) -> str:
        if self.accel not in ("qemu", "kvm"):
            raise ValueError(f"accel must be qemu or kvm, got {self.accel!r}")
        d = ET.Element("domain", type=self.accel)
        ET.SubElement(d, "name").text = self.name
        ET.SubElement(d, "uuid").text = self.uuid
        if self.metadata:
            md = ET.SubElement(d, "metadata")
            ET.SubElement(md, f"{{{NS}}}sandbox", {k: str(v) for k, v in sorted(self.metadata.items())})
        ET.SubElement(d, "memory", unit="MiB").text = str(int(self.memory_mib))
        ET.SubElement(d, "currentMemory", unit="MiB").text = str(int(self.memory_mib))
        if self.memory_source:
            mb = ET.SubElement(d, "memoryBacking")
            ET.SubElement(mb, "source", type=self.memory_source)
        ET.SubElement(d, "vcpu", placement="static").text = str(int(self.vcpus))
        if self.cpu_model:
            cpu = ET.SubElement(d, "cpu", mode="custom", match="exact")
            ET.SubElement(cpu, "model", fallback="forbid").text = self.cpu_model
        os_ = ET.SubElement(d, "os")
        ET.SubElement(os_, "type", arch="x86_64", machine=self.machine).text = "hvm"
        ET.SubElement(os_, "kernel").text = self.kernel
        ET.SubElement(os_, "initrd").text = self.initrd
        ET.SubElement(os_, "cmdline").text = self.cmdline
        feats = ET.SubElement(d, "features")
        ET.SubElement(feats, "acpi")
        ET.SubElement(d, "clock", offset="utc")
        ET.SubElement(d, "on_poweroff").text = "destroy"
        ET.SubElement(d, "on_reboot").text = "destroy"
        ET.SubElement(d, "on_crash").text = "destroy"
        dev = ET.SubElement(d, "devices")
        ET.SubElement(dev, "emulator").text = self.emulator
        disk = ET.SubElement(dev, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw")
        ET.SubElement(disk, "source", file=self.rootfs)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
        ET.SubElement(disk, "readonly")
        if self.packages:
            pk = ET.SubElement(dev, "disk", type="file", device="disk")
            ET.SubElement(pk, "driver", name="qemu", type="raw")
            ET.SubElement(pk, "source", file=self.packages)
            ET.SubElement(pk, "target", dev="vdb", bus="virtio")
            ET.SubElement(pk, "readonly")
        ET.SubElement(dev, "controller", type="usb", model="none")
        ch = ET.SubElement(dev, "channel", type="unix")
        ET.SubElement(ch, "source", mode="bind", path=self.channel_path)
        ET.SubElement(ch, "target", type="virtio", name=self.channel_name)
        if self.egress_path:
            eg = ET.SubElement(dev, "channel", type="unix")
            ET.SubElement(eg, "source", mode="bind", path=self.egress_path)
            ET.SubElement(eg, "target", type="virtio", name=EGRESS_CHANNEL_NAME)
        if self.serial_log:
            ser = ET.SubElement(dev, "serial", type="file")
            ET.SubElement(ser, "source", path=self.serial_log)
            ET.SubElement(ser, "target", port="0")
        else:
            ser = ET.SubElement(dev, "serial", type="null")
            ET.SubElement(ser, "target", port="0")
        ET.SubElement(dev, "memballoon", model="none")
        ET.indent(d)
        return ET.tostring(d, encoding="unicode")

    # -------------------------------------------------------------------------- parse ---
    @classmethod
    def parse(cls, text: str) -> "DomainSpec":
        """Read back a DomainSpec from XML we rendered (or libvirt's expanded version of it)."""
        d = ET.fromstring(text)
        if d.tag != "domain":
            raise ValueError("not a <domain> document")

        def req(path: str) -> ET.Element:
            el = d.find(path)
            if el is None:
                raise ValueError(f"domain XML lacks {path}")
            return el

        mem = req("memory")
        memory_mib = _to_mib(int(mem.text or 0), mem.get("unit", "KiB"))
        ch = egress = None
        for c in d.findall("devices/channel"):
            t = c.find("target")
            if c.get("type") == "unix" and t is not None and t.get("type") == "virtio":
                if t.get("name") == EGRESS_CHANNEL_NAME:
                    egress = c
                elif ch is None:
                    ch = c
        if ch is None:
            raise ValueError("domain XML has no virtio unix channel")
        disk = packages = None
        for dk in d.findall("devices/disk"):
            t = dk.find("target")
            if t is not None and t.get("dev") == "vda":
                disk = dk
            elif t is not None and t.get("dev") == "vdb":
                packages = dk.find("source").get("file")
        if disk is None:
            raise ValueError("domain XML has no vda disk")
        serial_log = None
        ser = d.find("devices/serial")
        if ser is not None and ser.get("type") == "file":
            src = ser.find("source")
            serial_log = src.get("path") if src is not None else None
        md = d.find(f"metadata/{{{NS}}}sandbox")
        msrc = d.find("memoryBacking/source")
        emulator = d.find("devices/emulator")
        return cls(
            name=req("name").text or "",
            uuid=req("uuid").text or "",
            memory_mib=memory_mib,
            kernel=req("os/kernel").text or "",
            initrd=req("os/initrd").text or "",
            cmdline=req("os/cmdline").text or "",
            rootfs=disk.find("source").get("file"),
            channel_path=ch.find("source").get("path"),
            packages=packages,
            cpu_model=d.findtext("cpu/model") or None,
            channel_name=ch.find("target").get("name"),
            egress_path=egress.find("source").get("path") if egress is not None else None,
            accel=d.get("type", "qemu"),
            vcpus=int(req("vcpu").text or 1),
            serial_log=serial_log,
            machine=_machine_family(req("os/type").get("machine", "pc")),
            emulator=emulator.text if emulator is not None and emulator.text else EMULATOR,
            metadata=dict(md.attrib) if md is not None else {},
            memory_source=msrc.get("type") if msrc is not None else None,
        )

    def readonly_root(self) -> bool:
        return True


def _to_mib(value: int, unit: str) -> int:
    factor = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 2**20,
              "mib": 2**20, "mb": 10**6, "g": 2**30, "gib": 2**30, "gb": 10**9}
    return int(value * factor[unit.lower()] // 2**20)


def _machine_family(machine: str) -> str:
    # libvirt expands "pc" to e.g. "pc-i440fx-7.2"; keep what we asked for when recognisable.
    if machine.startswith("pc-i440fx") or machine == "pc":
        return "pc"
    if machine.startswith("pc-q35") or machine == "q35":
        return "q35"
    return machine


def is_readonly_disk(xml_text: str) -> bool:
    d = ET.fromstring(xml_text)
    for dk in d.findall("devices/disk"):
        if dk.find("readonly") is None:
            return False
    return True


def lifecycle_actions(xml_text: str) -> dict[str, str]:
    d = ET.fromstring(xml_text)
    return {k: (d.findtext(k) or "") for k in ("on_poweroff", "on_reboot", "on_crash")}


def has_device(xml_text: str, tag: str) -> bool:
    d = ET.fromstring(xml_text)
    return d.find(f"devices/{tag}") is not None
