"""Saved VM states and the warm pool.

Templates: for each memory size, one VM is booted, its agent finishes importing numpy, pandas
and matplotlib, it is warmed with harmless requests and saved ("template"). Templates persist in
<cache_dir>/saves/<image>-<accel>-<qemu version>/ across processes, so a new process (or a cold
request with an empty pool) restores in about a second instead of booting for several seconds.

Identities: libvirt refuses to restore a save file under another UUID, and one UUID can only be
live once. An identity is a copy of a template whose UUID in the libvirt save header has been
rewritten (same length, in place; the QEMU migration stream after it carries no UUID). Each
identity is used by at most one live domain at a time; after that domain is destroyed (in the
background) the identity is free again. Identities live under <run_dir>/<pid>/ and are removed
with the process (or swept by the next one).

Warm pool: N slots. A slot restores a free identity, connects to its agent, arms it, warms it up
with harmless requests and is then READY. An execution takes a READY slot (BUSY); afterwards the
domain goes to the destroyer and the slot refills (REFILLING) from another free identity, so a
refill never waits for the 1-2 s destroy. Pooled slots have a fixed memory size
(config/pool memory, default 512 MiB); requests for other sizes take the cold path.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("sandbox.libvirt")

SAVE_MAGIC = b"LibvirtQemudSave"
SAVE_HEADER = struct.Struct("<16s5I56x")  # magic, version, data_len, was_running, compressed, cookieOffset, unused[14]


class SaveFileError(Exception):
    pass


def read_save_xml(path: Path) -> tuple[int, int, str]:
    """(offset, length, text) of the domain XML in a libvirt QEMU save file."""
    with open(path, "rb") as fh:
        head = fh.read(SAVE_HEADER.size)
        if len(head) < SAVE_HEADER.size:
            raise SaveFileError(f"{path}: too short for a libvirt save file")
        magic, _ver, data_len, _run, compressed, _cookie = SAVE_HEADER.unpack(head)
        if magic != SAVE_MAGIC:
            raise SaveFileError(f"{path}: not a finished libvirt save file ({magic!r})")
        if compressed:
            raise SaveFileError(f"{path}: compressed save files are not supported")
        data = fh.read(data_len)
    end = data.find(b"\0")
    xml = data[: end if end >= 0 else len(data)].decode()
    return SAVE_HEADER.size, data_len, xml


def clone_save(src: Path, dest: Path, old_uuid: str, new_uuid: str,
               old_name: str, new_name: str) -> None:
    """Copy a save file, rewriting domain name and UUID in its header (same lengths, in place).

    libvirt checks both against the XML given at restore time.
    """
    if len(old_uuid) != 36 or len(new_uuid) != 36:
        raise SaveFileError("UUIDs must be in canonical 36-character form")
    if len(old_name) != len(new_name):
        raise SaveFileError("domain names must keep their length")
    off, length, _xml = read_save_xml(src)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, tmp)
    with open(tmp, "r+b") as fh:
        fh.seek(off)
        data = fh.read(length)
        if data.count(f"<name>{old_name}</name>".encode()) != 1 or old_uuid.encode() not in data:
            raise SaveFileError(f"{src}: name/UUID of the template not found in the save header")
        data = data.replace(f"<name>{old_name}</name>".encode(), f"<name>{new_name}</name>".encode())
        data = data.replace(old_uuid.encode(), new_uuid.encode())
        fh.seek(off)
        fh.write(data)
    os.rename(tmp, dest)


@dataclass
class Template:
    memory_mib: int
    path: Path
    uuid: str
    name: str
    xml: str           # libvirt's XML of the saved domain (from the save header)
    created: float = 0.0


@dataclass
class Identity:
    memory_mib: int
    uuid: str
    name: str
    path: Path
    template: Template
    in_use: bool = False


class SaveStore:
    """Templates (persistent) and identities (per process) of saved VM states."""

    def __init__(self, template_dir: Path, identity_dir: Path):
        self.template_dir = Path(template_dir)
        self.identity_dir = Path(identity_dir)
        self._lock = threading.Lock()
        self._templates: dict[int, Template] = {}
        self._free: dict[int, list[Identity]] = {}
        self._all: list[Identity] = []

    def template_path(self, memory_mib: int) -> Path:
        return self.template_dir / f"tpl-{memory_mib}.save"

    def template(self, memory_mib: int) -> Template | None:
        with self._lock:
            t = self._templates.get(memory_mib)
        if t is not None:
            return t
        path = self.template_path(memory_mib)
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()):
            return None
        try:
            m = json.loads(meta.read_text())
            _off, _len, xml = read_save_xml(path)
            t = Template(memory_mib, path, m["uuid"], m["name"], xml, m.get("created", 0.0))
        except (OSError, ValueError, KeyError, SaveFileError) as exc:
            log.warning("ignoring broken template %s: %s", path, exc)
            return None
        with self._lock:
            self._templates[memory_mib] = t
        return t

    def install_template(self, memory_mib: int, saved: Path, uuid: str, name: str) -> Template:
        """Move a freshly saved state into place as the template for memory_mib."""
        self.template_dir.mkdir(parents=True, exist_ok=True)
        path = self.template_path(memory_mib)
        _off, _len, xml = read_save_xml(saved)
        meta = path.with_suffix(".json")
        meta.write_text(json.dumps({"uuid": uuid, "name": name, "memory_mib": memory_mib,
                                    "created": time.time()}))
        os.rename(saved, path)
        t = Template(memory_mib, path, uuid, name, xml, time.time())
        with self._lock:
            self._templates[memory_mib] = t
            stale = self._free.pop(memory_mib, [])
        for ident in stale:
            self._discard(ident)
        return t

    def drop_template(self, memory_mib: int, template: Template | None = None) -> None:
        """Forget (and delete) the template, unless another process replaced it meanwhile."""
        with self._lock:
            current = self._templates.get(memory_mib)
            if template is not None and current is not template:
                return
            self._templates.pop(memory_mib, None)
            stale = self._free.pop(memory_mib, [])
        for ident in stale:
            self._discard(ident)
        path = self.template_path(memory_mib)
        try:
            if template is not None and path.stat().st_mtime > template.created + 5:
                return  # a newer template was installed by someone else
        except FileNotFoundError:
            return
        for p in (path, path.with_suffix(".json")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def acquire(self, memory_mib: int, name_for) -> Identity | None:
        """A free identity for memory_mib (cloned from the template when none is free)."""
        t = self.template(memory_mib)
        if t is None:
            return None
        with self._lock:
            free = self._free.setdefault(memory_mib, [])
            while free:
                ident = free.pop()
                if ident.template is t and ident.path.exists():
                    ident.in_use = True
                    return ident
        self.identity_dir.mkdir(parents=True, exist_ok=True)
        new_uuid = str(uuidlib.uuid4())
        name = name_for(new_uuid)
        path = self.identity_dir / f"id-{memory_mib}-{new_uuid}.save"
        try:
            clone_save(t.path, path, t.uuid, new_uuid, t.name, name)
        except (OSError, SaveFileError) as exc:
            log.warning("template %s unusable (%s); dropping it", t.path, exc)
            self.drop_template(memory_mib, t)
            return None
        ident = Identity(memory_mib, new_uuid, name, path, t, in_use=True)
        with self._lock:
            self._all.append(ident)
        return ident

    def release(self, ident: Identity, broken: bool = False) -> None:
        """The domain restored from `ident` is gone: make the identity reusable."""
        with self._lock:
            ident.in_use = False
            current = self._templates.get(ident.memory_mib)
            if not broken and current is ident.template:
                self._free.setdefault(ident.memory_mib, []).append(ident)
                return
        self._discard(ident)

    def _discard(self, ident: Identity) -> None:
        with self._lock:
            if ident in self._all:
                self._all.remove(ident)
        try:
            ident.path.unlink()
        except FileNotFoundError:
            pass

    def counts(self) -> dict:
        with self._lock:
            return {"identities": len(self._all),
                    "free": sum(len(v) for v in self._free.values()),
                    "templates": sorted(self._templates)}

    def close(self) -> None:
        shutil.rmtree(self.identity_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- the pool ---

READY, BUSY, REFILLING, FAILED = "ready", "busy", "refilling", "failed"


@dataclass
class Slot:
    index: int
    state: str = REFILLING
    vm: object | None = None          # driver.VM when ready/busy
    generation: int = 0
    last_error: str = ""
    refills: int = 0
    ready_at: float = 0.0
    errors: list = field(default_factory=list)


class WarmPool:
    """N slots kept READY by background refill threads (one per slot).

    `prepare(slot)` is the driver's callable that produces a ready VM (restore + connect + arm
    + warm-up) or raises; `retire(vm)` hands a used VM to the destroyer.
    """

    def __init__(self, size: int, prepare, retire, name: str = "pool"):
        self.size = size
        self._prepare = prepare
        self._retire = retire
        self._cv = threading.Condition()
        self._slots = [Slot(i) for i in range(size)]
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._name = name

    def start(self) -> None:
        for s in self._slots:
            t = threading.Thread(target=self._run, args=(s,), name=f"{self._name}-slot{s.index}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, slot: Slot) -> None:
        backoff = 0.5
        while True:
            with self._cv:
                while slot.state in (READY, BUSY) and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                slot.state = REFILLING
            try:
                vm = self._prepare(slot)
            except Exception as exc:  # noqa: BLE001 - keep the slot alive, retry with backoff
                log.warning("pool slot %d refill failed: %s", slot.index, exc)
                with self._cv:
                    slot.last_error = str(exc)
                    slot.errors = (slot.errors + [str(exc)])[-5:]
                    slot.state = FAILED
                if self._wait_stop(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
                with self._cv:
                    slot.state = REFILLING
                continue
            backoff = 0.5
            with self._cv:
                if self._stop:
                    self._retire(vm)
                    return
                slot.vm = vm
                slot.generation += 1
                slot.refills += 1
                slot.state = READY
                slot.ready_at = time.monotonic()
                self._cv.notify_all()

    def _wait_stop(self, seconds: float) -> bool:
        with self._cv:
            self._cv.wait_for(lambda: self._stop, timeout=seconds)
            return self._stop

    def take(self, wait_s: float = 0.0, accept=None):
        """(slot, vm) of a READY slot, now BUSY; None when none is ready within wait_s.

        With `accept(vm) -> bool`, READY slots whose VM is not accepted (e.g. of a package
        layer that is no longer active) are recycled instead of taken.
        """
        deadline = time.monotonic() + wait_s
        stale: list = []
        try:
            with self._cv:
                while True:
                    if accept is not None:
                        stale += self._recycle_locked(lambda vm: not accept(vm))
                    ready = [s for s in self._slots if s.state == READY]
                    if ready:
                        s = min(ready, key=lambda x: x.ready_at)
                        s.state = BUSY
                        vm, s.vm = s.vm, None
                        return s, vm
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stop:
                        return None
                    self._cv.wait(left)
        finally:
            for vm in stale:
                self._retire(vm)

    def recycle(self, stale) -> int:
        """Retire the VMs of READY slots for which `stale(vm)` is true; those slots refill."""
        with self._cv:
            vms = self._recycle_locked(stale)
        for vm in vms:
            self._retire(vm)
        return len(vms)

    def _recycle_locked(self, stale) -> list:
        vms = []
        for s in self._slots:
            if s.state == READY and s.vm is not None and stale(s.vm):
                vms.append(s.vm)
                s.vm = None
                s.state = REFILLING
        if vms:
            self._cv.notify_all()
        return vms

    def give_back(self, slot: Slot, vm) -> None:
        """The execution on `vm` finished: retire it (None: the caller keeps it, reuse.py) and
        refill the slot."""
        if vm is not None:
            self._retire(vm)
        with self._cv:
            slot.state = REFILLING
            self._cv.notify_all()

    def wait_ready(self, n: int | None = None, timeout: float = 120.0) -> bool:
        n = self.size if n is None else n
        with self._cv:
            return self._cv.wait_for(
                lambda: sum(1 for s in self._slots if s.state == READY) >= n, timeout=timeout)

    def counts(self) -> dict:
        with self._cv:
            c = {READY: 0, BUSY: 0, REFILLING: 0, FAILED: 0}
            for s in self._slots:
                c[s.state] += 1
            return {"ready": c[READY], "busy": c[BUSY],
                    "refilling": c[REFILLING] + c[FAILED], "failed": c[FAILED],
                    "size": self.size,
                    "last_errors": [s.last_error for s in self._slots if s.state == FAILED]}

    def close(self) -> list:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            vms = []
            for s in self._slots:
                if s.vm is not None:
                    vms.append(s.vm)
                    s.vm = None
        for t in self._threads:
            t.join(timeout=30)
        return vms
