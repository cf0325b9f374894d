"""LibvirtDriver: runs each execution in a single-use VM (warm pool slot, else cold).

Paths of one execution:
- warm: take a READY pool slot (restored from its saved state, agent armed and warmed up),
  send the request, read the result, hand the domain to the destroyer, refill the slot;
- cold, template available: restore a saved template for the requested memory under a free
  identity (~1 s), then the same;
- cold, no template for that memory: boot the VM (createXML with AUTODESTROY, direct kernel
  boot) and wait for the agent's imports (several seconds under TCG); a template for that
  memory is then made in the background so the next cold request restores instead.

Package layer: the active runtime's ext4 image (sandbox.layers.active_layer) is attached
read-only as vdb; the guest mounts it at /opt/stepwell/packages. Saved templates and identities
are kept per layer, so every VM is restored with the disk it was saved with. A watcher notices
an activation, makes the new layer's template and recycles READY slots of the old layer; an
execution only takes a slot of the active layer (else the cold path), and executions already
running finish on the VM (and layer) they started on. A request that names another layer (a
session pool pinned to a runtime) takes the cold path, which restores that layer's template
once it has one.

The host enforces the wall-clock timeout by destroying the domain (status `timeout`). When the
channel closes before a result (guest powered off, rebooted or crashed: on_* = destroy), the
status is `killed`. Destroys run on background threads, off the request path.

This module decides which VM serves an execution and owns their lives; beside it: guest.py (the
session with one VM's agent and the reading of its result), warmups.py (what a restored VM
runs before it is READY), pool.py (slots, templates, identities), host.py (libvirt and the
host probes) and xml.py (domain XML).
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import shutil
import signal
import stat
import tempfile
import threading
import time
import uuid as uuidlib
from pathlib import Path

from sandbox import cancel, layers, protocol, streaming
from sandbox.config import SandboxConfig
from sandbox.contract import (
    DEFAULT_MEMORY_MIB, ExecutionRequest, ExecutionResult, SandboxError, SandboxUnavailable,
    Status,
)
from sandbox.image import find_image
from sandbox.sessions import SessionError, SessionStore, keepable

from .access import check_qemu_access
from .guest import (
    VM, Cancelled, EgressSession, NotAccepted, cap_text, connect_unix, result_from_reply, with_egress,
)
from .host import (
    Host, RestoreRejected, libvirtd_thp_disabled, pid_alive, process_cpu_seconds, qemu_version,
    resolve_accel, thp_mode,
)
from .pool import SaveStore, WarmPool
from .reuse import ReuseStore, key_of, reusable
from .warmups import WARMUPS, WARMUPS_UNDER_LOAD, warm
from .xml import DomainSpec

log = logging.getLogger("sandbox.libvirt")

PREFIX = "stepwell-"
BOOT_TIMEOUT_S = 120.0
MAX_COLD_CONCURRENCY = 4
DESTROYER_THREADS = 3
# Version of saved templates (<cache_dir>/saves/v<N>-...): bump when saves of older code must
# not be restored. 6: QEMU runs as the unprivileged qemu.conf user, not root.
SAVE_VERSION = 6


def _not_started(exc: Exception, meta: dict, t0: float) -> ExecutionResult:
    return ExecutionResult(status=Status.ERROR, message=f"could not start a sandbox VM: {exc}",
                           duration_ms=(time.monotonic() - t0) * 1000, metadata=meta)


class LibvirtDriver:
    name = "libvirt"
    supports_egress = True      # ExecutionRequest.allowed_hosts is honoured (guest.EgressSession)
    _instances = itertools.count(1)

    def __init__(self, config: SandboxConfig | None = None, pool_size: int | None = None,
                 pool_memory_mib: int = DEFAULT_MEMORY_MIB):
        self.config = config or SandboxConfig.from_env()
        self.pool_size = self.config.pool_size if pool_size is None else int(pool_size)
        self.pool_memory_mib = int(pool_memory_mib)
        self.accel = resolve_accel(self.config.accel)
        self.image = None
        self.host: Host | None = None
        self.pool: WarmPool | None = None
        self.store: SaveStore | None = None      # the store of the active layer
        self._stores: dict[str, SaveStore] = {}
        self._tpl_base: Path | None = None
        self._layer_key = "nolayer"
        self._pid = os.getpid()
        self._instance = next(LibvirtDriver._instances)
        # stepwell-<pid>-<instance>-...: fixed width, so a template's domain name can be
        # rewritten in place (same length) in cloned save files; the sweep reads the pid.
        self._prefix = f"{PREFIX}{self._pid:07d}-{self._instance:03d}-"
        self._seq = itertools.count(1)
        self._run_dir = Path(self.config.run_dir) / str(self._pid) / str(self._instance)
        # unix socket paths must stay under 108 bytes: with a long run dir the sockets go to a
        # fresh private folder in /tmp, made by start() (mkdtemp: never a predictable name)
        self._sock_dir = self._run_dir if len(str(self._run_dir)) <= 80 else None
        self._destroy_q: queue.Queue = queue.Queue()
        self._destroyers: list[threading.Thread] = []
        self._tpl_locks: dict[tuple, threading.Lock] = {}
        self._tpl_lock = threading.Lock()
        self._tpl_pending: set[tuple] = set()
        self._cold_sem = threading.BoundedSemaphore(MAX_COLD_CONCURRENCY)
        self._live: dict[str, VM] = {}
        self._live_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()
        self.stats = {"warm": 0, "cold_restore": 0, "cold_boot": 0}
        self._inflight = 0               # executions in progress (see _prepare_slot)
        self.libvirtd_thp_disabled: bool | None = None  # set by start()
        self._inflight_lock = threading.Lock()
        self._cancels = cancel.Cancels()   # executions in flight by caller id (cancel verb)
        self.reuse: ReuseStore | None = None   # idle VMs per reuse key (workflow isolation)
        self.sessions: SessionStore | None = None   # VMs held per session key (sessions)

    # -------------------------------------------------------------------- lifecycle ---
    def start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self.image = find_image(self.config.cache_dir)
            if self.image is None:
                raise SandboxUnavailable(
                    f"no sandbox guest image for this code in {self.config.cache_dir}/images; "
                    "build it with `python manage.py sandbox_build_image` (or python -m sandbox.image)")
            self.host = Host(self.config.libvirt_uri)
            self.host.conn()
            # read once: status() is polled often, and a libvirtd restart is rare
            self.libvirtd_thp_disabled = libvirtd_thp_disabled()
            self._run_dir.mkdir(parents=True, exist_ok=True)
            if self._sock_dir is None:
                self._sock_dir = Path(tempfile.mkdtemp(
                    prefix=f"stepwell-{self._pid}-{self._instance}-"))
            else:
                self._sock_dir.mkdir(parents=True, exist_ok=True)
            check_private_dir(self._sock_dir)
            self._tpl_base = (Path(self.config.cache_dir) / "saves"
                              / f"v{SAVE_VERSION}-{self.image.id[:16]}-{self.accel}-{qemu_version()}")
            layer = layers.active_layer(self.config)
            self._check_qemu_access(layer)
            self._layer_key = _layer_key(layer)
            self.store = self._store_for(layer)
            self.sweep()
            for i in range(DESTROYER_THREADS):
                t = threading.Thread(target=self._destroyer, name=f"libvirt-destroy-{i}", daemon=True)
                t.start()
                self._destroyers.append(t)
            self.reuse = ReuseStore(self._retire)
            self.sessions = SessionStore(self._retire, name="libvirt-sessions")
            self._started = True
            if self.pool_size > 0:
                self.pool = WarmPool(self.pool_size, self._prepare_slot, self._retire)
                threading.Thread(target=self._start_pool, name="libvirt-pool-start",
                                 daemon=True).start()
            else:
                self._schedule_template(self.pool_memory_mib, layer)
            threading.Thread(target=self._watch_layer, name="libvirt-layer-watch", daemon=True).start()

    def _check_qemu_access(self, layer) -> None:
        """QEMU runs as qemu.conf's unprivileged user and opens the guest kernel, initrd and disk
        images by path: refuse to start when it could not read them (a cache under /root)."""
        ids = self.host.qemu_ids(self.accel)
        if ids is None:
            return
        uid, gid = ids
        if uid == 0:
            log.warning("libvirtd runs QEMU as root; scripts/start-libvirtd.sh makes it run "
                        "as the unprivileged user libvirt-qemu")
            return
        paths = [self.image.kernel, self.image.initrd, self.image.rootfs]
        if layer is not None and layer.image_path:
            paths.append(layer.image_path)
        unreadable, writable = check_qemu_access(paths, uid, gid)
        if writable:
            log.warning("QEMU (uid %d) could write %s: keep them owned by another user and "
                        "not writable by it (qemu.conf dynamic_ownership = 0)", uid, writable)
        if unreadable:
            raise SandboxUnavailable(
                f"QEMU runs as uid {uid} (libvirt's qemu.conf user) and cannot read "
                f"{', '.join(unreadable)}; put the sandbox cache where it can, e.g. "
                "SANDBOX_CACHE_DIR=/var/cache/stepwell (root's default; folders 0755, files "
                "0644), and build the image again")

    def _start_pool(self) -> None:
        try:
            self._ensure_template(self.pool_memory_mib, layers.active_layer(self.config))
        except Exception as exc:  # noqa: BLE001 - slots retry on their own
            log.warning("could not make the pool template: %s", exc)
        if not self._closed and self.pool is not None:
            self.pool.start()

    def wait_ready(self, n: int | None = None, timeout: float = 180.0) -> bool:
        """Block until n (default: all) pool slots are ready. For tests and benchmarks."""
        if self.pool is None:
            return True
        return self.pool.wait_ready(n, timeout)

    def status(self) -> dict:
        c = self.pool.counts() if self.pool else {"ready": 0, "busy": 0, "refilling": 0, "size": 0}
        with self._live_lock:
            live = len(self._live)
        return {
            "driver": self.name, "ready": c["ready"], "busy": c["busy"],
            "refilling": c["refilling"], "size": c["size"], "accel": self.accel,
            "image_id": self.image.id if self.image else None,
            "pool_memory_mib": self.pool_memory_mib, "live_domains": live,
            "destroy_queue": self._destroy_q.qsize(), "executions": dict(self.stats),
            "templates": self.store.counts()["templates"] if self.store else [],
            "errors": c.get("last_errors", []),
            "host_thp": thp_mode(),
            "libvirtd_thp_disabled": self.libvirtd_thp_disabled,
            "reuse": self.reuse.counts() if self.reuse else None,
            "sessions": self.sessions.counts() if self.sessions else None,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        vms = self.pool.close() if self.pool else []
        vms += self.reuse.close() if self.reuse else []
        vms += self.sessions.close() if self.sessions else []
        for vm in vms:
            self._retire(vm)
        with self._live_lock:
            leftovers = list(self._live.values())
        for vm in leftovers:
            self._retire(vm)
        for _ in self._destroyers:
            self._destroy_q.put(None)
        for t in self._destroyers:
            t.join(timeout=60)
        if self.host is not None:
            for name, _active in self.host.list_domains(self._prefix):
                self._kill_domain(name)
            self.host.close()
        for store in list(self._stores.values()):
            store.close()
        shutil.rmtree(self._run_dir, ignore_errors=True)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------ sweep ---
    def sweep(self) -> list[str]:
        """Destroy domains and remove files left by earlier (dead) processes."""
        removed = []
        for name, _active in self.host.list_domains(PREFIX):
            owner = name[len(PREFIX):].split("-", 1)[0]
            if owner.isdigit() and int(owner) != self._pid and pid_alive(int(owner)):
                continue
            if owner.isdigit() and int(owner) == self._pid:
                continue
            self._kill_domain(name)
            try:
                self.host.undefine(name)
            except SandboxError:
                pass
            removed.append(name)
        run_root = Path(self.config.run_dir)
        if run_root.is_dir():
            for d in run_root.iterdir():
                if d.is_dir() and d.name.isdigit() and int(d.name) != self._pid \
                        and not pid_alive(int(d.name)):
                    shutil.rmtree(d, ignore_errors=True)
        for d in Path(tempfile.gettempdir()).glob("stepwell-*-*"):
            pid = d.name.split("-")[1]
            try:
                st = d.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and pid.isdigit() \
                    and int(pid) != self._pid and not pid_alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)
        if self._tpl_base is not None and self._tpl_base.is_dir():
            for p in self._tpl_base.glob("*/*.partial*"):
                pid = p.name.rsplit(".", 1)[-1]
                if not pid.isdigit() or not pid_alive(int(pid)):
                    p.unlink(missing_ok=True)
        if removed:
            log.info("swept %d leftover domains: %s", len(removed), removed)
        return removed

    # ---------------------------------------------------------------------- domains ---
    def _spec(self, name: str, uid: str, memory_mib: int, layer=None) -> DomainSpec:
        img = self.image
        packages = str(layer.image_path) if layer is not None and layer.image_path else None
        meta = {"owner": str(self._pid), "image": img.id[:16]}
        if packages:
            meta["runtime"] = str(layer.runtime_id)
        n = next(self._seq)
        return DomainSpec(
            name=name, uuid=uid, memory_mib=memory_mib, kernel=str(img.kernel),
            initrd=str(img.initrd), rootfs=str(img.rootfs), packages=packages,
            cmdline=img.cmdline + (" stepwell.packages=1" if packages else ""),
            channel_path=str(self._sock_dir / f"{n}.sock"),
            egress_path=str(self._sock_dir / f"{n}.egress.sock"),
            serial_log=str(self._run_dir / f"{name}.log"), accel=self.accel,
            metadata=meta,
        )

    def _store_for(self, layer) -> SaveStore:
        """Templates and identities of one package layer (a saved VM keeps its disks)."""
        key = _layer_key(layer)
        with self._tpl_lock:
            store = self._stores.get(key)
            if store is None:
                store = SaveStore(self._tpl_base / key, self._run_dir / "identities" / key)
                self._stores[key] = store
            return store

    def _new_name(self, kind: str) -> str:
        return f"{self._prefix}{kind}{next(self._seq)}"

    def _register(self, vm: VM) -> None:
        with self._live_lock:
            self._live[vm.name] = vm

    def _identity_name(self, uid: str) -> str:
        # Fixed length, so a template's name can be rewritten in place in cloned save files.
        return f"{self._prefix}{uid}"

    def _boot(self, memory_mib: int, kind: str, autodestroy: bool = True, layer=None) -> VM:
        uid = str(uuidlib.uuid4())
        name = self._identity_name(uid) if kind == "t" else self._new_name(kind)
        spec = self._spec(name, uid, memory_mib, layer)
        t = time.monotonic()
        self.host.create(spec.render(), autodestroy=autodestroy)
        vm = VM(name, spec, None, "boot", layer=layer)
        self._register(vm)
        try:
            hello = vm.connect(BOOT_TIMEOUT_S)
            if not hello.get("ready"):
                raise SandboxError(f"guest agent of {name} is not ready: {hello}")
        except protocol.ProtocolError as exc:
            self._retire(vm)
            raise SandboxError(f"guest agent of {name} did not come up: {exc}") from None
        except BaseException:
            self._retire(vm)
            raise
        vm.timings["boot_ms"] = round((time.monotonic() - t) * 1000, 1)
        return vm

    def _restore(self, memory_mib: int, kind: str, layer=None) -> VM | None:
        store = self._store_for(layer)
        ident = store.acquire(memory_mib, self._identity_name)
        if ident is None:
            return None
        name = ident.name
        spec = self._spec(name, ident.uuid, memory_mib, layer)
        t = time.monotonic()
        try:
            self.host.restore(str(ident.path), spec.render())
        except RestoreRejected as exc:
            store.release(ident, broken=True)
            log.warning("restore rejected, dropping template %d MiB: %s", memory_mib, exc)
            store.drop_template(memory_mib, ident.template)
            raise
        except BaseException:
            store.release(ident, broken=True)
            raise
        vm = VM(name, spec, None, "restore", identity=ident, store=store, layer=layer)
        self._register(vm)
        try:
            t1 = time.monotonic()
            hello = vm.connect(30)
            if not hello.get("ready"):
                raise SandboxError(f"restored agent of {name} is not ready: {hello}")
        except protocol.ProtocolError as exc:
            vm.broken = True
            self._retire(vm)
            raise SandboxError(f"restored agent of {name} did not answer: {exc}") from None
        except BaseException:
            self._retire(vm)
            raise
        vm.timings["restore_ms"] = round((t1 - t) * 1000, 1)
        vm.timings["connect_ms"] = round((time.monotonic() - t1) * 1000, 1)
        return vm

    def _retire(self, vm: VM) -> None:
        """Hand a VM to the background destroyer."""
        if vm.session is not None:
            vm.session.close()
        vm.close_egress()
        self._destroy_q.put(vm)

    def _sigkill(self, name: str) -> None:
        pid = self.host.qemu_pid(name)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _kill_domain(self, name: str) -> None:
        self._sigkill(name)
        try:
            self.host.destroy(name)
        except SandboxError as exc:
            log.debug("destroy %s: %s", name, exc)

    def _destroyer(self) -> None:
        while True:
            vm = self._destroy_q.get()
            if vm is None:
                return
            try:
                self._kill_domain(vm.name)
                for _ in range(200):
                    if self.host.state(vm.name) in ("gone", "shutoff"):
                        break
                    time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001
                log.warning("destroying %s: %s", vm.name, exc)
            finally:
                with self._live_lock:
                    self._live.pop(vm.name, None)
                keep = os.environ.get("SANDBOX_KEEP_LOGS")
                for p in (vm.spec.channel_path, vm.spec.egress_path,
                          None if keep else vm.spec.serial_log):
                    if p:
                        try:
                            os.unlink(p)
                        except OSError:
                            pass
                if vm.identity is not None:
                    (vm.store or self.store).release(vm.identity, broken=vm.broken)

    # -------------------------------------------------------------------- templates ---
    def _lock_for(self, memory_mib: int, layer=None) -> threading.Lock:
        with self._tpl_lock:
            return self._tpl_locks.setdefault((memory_mib, _layer_key(layer)), threading.Lock())

    def _ensure_template(self, memory_mib: int, layer=None) -> None:
        store = self._store_for(layer)
        if store.template(memory_mib) is not None:
            return
        with self._lock_for(memory_mib, layer):
            if store.template(memory_mib) is not None:
                return
            t = time.monotonic()
            vm = self._boot(memory_mib, "t", autodestroy=False, layer=layer)
            try:
                warm(vm, self._seq)
                vm.disarm()
                store.template_dir.mkdir(parents=True, exist_ok=True)
                partial = store.template_dir / f"tpl-{memory_mib}.save.partial.{self._pid}"
                self.host.save(vm.name, str(partial))
                store.install_template(memory_mib, partial, vm.spec.uuid, vm.name)
            finally:
                self._retire(vm)
            log.info("template for %d MiB (%s) made in %.1f s", memory_mib, _layer_key(layer),
                     time.monotonic() - t)

    def _schedule_template(self, memory_mib: int, layer=None) -> None:
        key = (memory_mib, _layer_key(layer))
        with self._tpl_lock:
            if key in self._tpl_pending:
                return
            self._tpl_pending.add(key)

        def run():
            try:
                self._ensure_template(memory_mib, layer)
            except Exception as exc:  # noqa: BLE001
                log.warning("background template %d MiB failed: %s", memory_mib, exc)
            finally:
                with self._tpl_lock:
                    self._tpl_pending.discard(key)

        threading.Thread(target=run, name=f"libvirt-template-{memory_mib}", daemon=True).start()

    # ------------------------------------------------------------------------- pool ---
    def _watch_layer(self) -> None:
        """Roll the pool onto a newly activated layer: make its template, then recycle READY
        slots of the old layer so they refill from it (take() already skips them meanwhile)."""
        while not self._closed:
            time.sleep(1.0)
            try:
                layer = layers.active_layer(self.config)
                key = _layer_key(layer)
                if key == self._layer_key:
                    continue
                log.info("package layer changed: %s -> %s", self._layer_key, key)
                self._layer_key = key
                self.store = self._store_for(layer)
                if self.pool is not None:
                    self._ensure_template(self.pool_memory_mib, layer)
                    self.pool.recycle(lambda vm, key=key: _layer_key(vm.layer) != key)
            except Exception as exc:  # noqa: BLE001 - keep watching
                log.warning("package layer watch: %s", exc)

    def _prepare_slot(self, slot) -> VM:
        if self._closed:
            raise SandboxError("driver closed")
        vm = None
        layer = layers.active_layer(self.config)
        for _ in range(2):
            self._ensure_template(self.pool_memory_mib, layer)
            vm = self._restore(self.pool_memory_mib, f"p{slot.index}-", layer)
            if vm is not None:
                break
        if vm is None:
            raise SandboxError("no usable template for the pool memory size")
        # Under load (as many executions running as the pool has slots) a refilled slot is
        # taken at once: the full warm-ups would cost more CPU than they save, so only the one
        # that reseeds the RNGs runs.
        under_load = self._inflight >= max(1, self.pool_size)
        try:
            warm(vm, self._seq, WARMUPS_UNDER_LOAD if under_load else WARMUPS)
        except BaseException:
            vm.broken = True
            self._retire(vm)
            raise
        vm.timings["warmups"] = "light" if under_load else "full"
        return vm

    # -------------------------------------------------------------------- execution ---
    def cancel(self, execution_id: str) -> bool:
        """Stop the execution now: the host stops waiting, asks the agent for the output so far
        and destroys the VM (result: killed, cancel.MESSAGE). False when it is not running (one
        that has not started yet will not)."""
        return self._cancels.cancel(execution_id)

    def execute(self, request: ExecutionRequest, execution_id: str | None = None,
                on_output=None) -> ExecutionResult:
        """`on_output(stdout, stderr)`: live output while the code runs (sandbox/streaming.py)."""
        with streaming.attached(on_output):
            return self._execute(request, execution_id)

    def _execute(self, request: ExecutionRequest, execution_id: str | None = None) -> ExecutionResult:
        execution_id = cancel.check_id(execution_id)
        with self._inflight_lock:
            self._inflight += 1
        try:
            for attempt in range(3):
                if self._cancels.cancelled(execution_id):
                    return ExecutionResult(status=Status.KILLED, message=cancel.MESSAGE,
                                           metadata={"driver": self.name})
                try:
                    return self._execute_once(request, execution_id)
                except NotAccepted as exc:
                    log.warning("VM %s was gone before the request reached it; retrying", exc)
            return ExecutionResult(status=Status.ERROR, message="sandbox VMs kept failing to start",
                                   metadata={"driver": self.name})
        finally:
            self._cancels.unregister(execution_id)
            with self._inflight_lock:
                self._inflight -= 1

    def _execute_once(self, request: ExecutionRequest, execution_id: str | None = None) -> ExecutionResult:
        if not self._started:
            self.start()
        if self._closed:
            raise SandboxUnavailable("the libvirt driver is closed")
        t0 = time.monotonic()
        meta = {"driver": self.name, "accel": self.accel, "image_id": self.image.id}
        try:   # the active layer, or the one the request names (a session pool's runtime)
            layer = layers.layer_for(request, self.config)
        except layers.LayerMissing as exc:
            return ExecutionResult(status=Status.ERROR, message=str(exc), metadata=meta)
        key = _layer_key(layer)
        if request.isolation == "session":
            return self._execute_session(request, meta, t0, layer, execution_id)
        rkey = key_of(request, key)    # workflow isolation: a VM kept for this key (reuse.py)
        if rkey is not None:
            vm = self.reuse.take(rkey)
            if vm is not None:
                self.stats["reused"] = self.stats.get("reused", 0) + 1
                meta.update(path="reuse", slot=None, uses=self.reuse.uses(vm))
                return self._run_kept(rkey, vm, request, meta, t0, execution_id)
        taken = None
        if self.pool is not None and int(request.memory_mib) == self.pool_memory_mib:
            # only a slot of the active layer; stale ones are recycled (they refill from it)
            taken = self.pool.take(accept=lambda vm: _layer_key(vm.layer) == key)
        if taken is not None:
            slot, vm = taken
            self.stats["warm"] += 1
            meta.update(path="warm", slot=slot.index)
            try:
                if rkey is not None:
                    return self._run_kept(rkey, vm, request, meta, t0, execution_id)
                return self._run(vm, request, meta, t0, execution_id)
            finally:
                self.pool.give_back(slot, None if rkey is not None else vm)
        meta.update(path="cold", slot=None)
        with self._cold_sem:
            try:
                vm = self._cold_vm(int(request.memory_mib), ("c", "b"), layer, meta)
            except SandboxUnavailable:
                raise
            except SandboxError as exc:
                return _not_started(exc, meta, t0)
            if rkey is not None:
                return self._run_kept(rkey, vm, request, meta, t0, execution_id)
            try:
                return self._run(vm, request, meta, t0, execution_id)
            finally:
                self._retire(vm)

    def _cold_vm(self, memory_mib: int, prefixes: tuple[str, str], layer, meta: dict):
        """A VM outside the pool (call under _cold_sem): restored from the template, else booted
        (and a template scheduled); `prefixes` name restored and booted domains. Raises
        SandboxError when none starts."""
        vm = self._restore(memory_mib, prefixes[0], layer)
        if vm is not None:
            self.stats["cold_restore"] += 1
            meta["start"] = "restore"
            return vm
        self._schedule_template(memory_mib, layer)
        vm = self._boot(memory_mib, prefixes[1], layer=layer)
        self.stats["cold_boot"] += 1
        meta["start"] = "boot"
        return vm

    def _execute_session(self, request: ExecutionRequest, meta: dict, t0: float, layer,
                         execution_id: str | None = None) -> ExecutionResult:
        """A stateful session (sandbox/sessions.py): the VM held for the key, else a new one
        (warm slot or cold) that is then held; destroyed unless the execution ended normally
        with the guest's session process alive."""
        key = request.reuse_key
        try:
            vm = self.sessions.acquire(key, t0 + float(request.timeout_s))
        except SessionError as exc:
            return ExecutionResult(status=Status.ERROR, message=str(exc),
                                   duration_ms=(time.monotonic() - t0) * 1000,
                                   metadata={**meta, "session": "new"})
        result, slot = None, None
        try:
            if vm is not None:
                self.stats["session_resumed"] = self.stats.get("session_resumed", 0) + 1
                meta.update(path="session", slot=None, session="resumed")
            else:
                meta["session"] = "new"
                taken = None
                if self.pool is not None and int(request.memory_mib) == self.pool_memory_mib:
                    lk = _layer_key(layer)
                    taken = self.pool.take(accept=lambda v: _layer_key(v.layer) == lk)
                if taken is not None:
                    slot, vm = taken
                    self.stats["warm"] += 1
                    meta.update(path="warm", slot=slot.index)
                else:
                    meta.update(path="cold", slot=None)
                    with self._cold_sem:
                        try:
                            vm = self._cold_vm(int(request.memory_mib), ("s", "s"), layer, meta)
                        except SandboxUnavailable:
                            raise
                        except SandboxError as exc:
                            return _not_started(exc, meta, t0)
            result = self._run(vm, request, meta, t0, execution_id)
            return result
        finally:
            keep = (vm is not None and not vm.broken and keepable(result)
                    and meta.get("isolation") == "session")
            if keep and vm.spec.egress_path:
                try:
                    vm.egress_port = EgressSession(connect_unix(vm.spec.egress_path))
                except OSError:
                    keep = False
            if result is not None:
                result.metadata.pop("session_alive", None)
            self.sessions.release(key, vm, keep, request.session_idle_s)
            if slot is not None:
                self.pool.give_back(slot, None)

    def end_session(self, key: str) -> bool:
        """Destroy the VM held for session `key` (after the execution in flight, if any);
        False when there is no such session."""
        if not self._started or self.sessions is None:
            return False
        return self.sessions.end(key)

    def _run_kept(self, rkey: tuple, vm: VM, request: ExecutionRequest, meta: dict, t0: float,
                  execution_id: str | None = None) -> ExecutionResult:
        """The request in `vm`, then the VM kept for `rkey` (its egress port connected again
        for the next execution) or destroyed (reuse.ReuseStore.done)."""
        result = None
        try:
            result = self._run(vm, request, meta, t0, execution_id)
            return result
        finally:
            if vm.spec.egress_path and result is not None and reusable(result):
                try:
                    vm.egress_port = EgressSession(connect_unix(vm.spec.egress_path))
                except OSError:
                    vm.broken = True
            self.reuse.done(rkey, vm, result)

    def _run(self, vm: VM, request: ExecutionRequest, meta: dict, t0: float,
             execution_id: str | None = None) -> ExecutionResult:
        """The request in `vm`, with the guest's egress streams served meanwhile (and all
        ended, their records in the result, once it is over)."""
        egress = vm.egress(request)
        records: list[dict] = []
        try:
            result = self._run_code(vm, request, meta, t0, execution_id)
        finally:
            if egress is not None:
                records = egress.close()
        return with_egress(result, records)

    def _run_code(self, vm: VM, request: ExecutionRequest, meta: dict, t0: float,
                  execution_id: str | None = None) -> ExecutionResult:
        meta["domain"] = vm.name
        meta["runtime_id"] = vm.layer.runtime_id if vm.layer is not None else None
        meta.update({k: v for k, v in vm.timings.items()})
        req = request.to_dict()
        req.pop("timeout_s", None)
        t_exec = time.monotonic()
        deadline = t_exec + float(request.timeout_s)
        stop = threading.Event()
        if not self._cancels.register(execution_id, stop.set):
            stop.set()
        qemu = self.host.qemu_pid(vm.name)
        cpu0 = process_cpu_seconds(qemu)

        def meter() -> None:   # the VM's CPU time during the execution, read on the host
            cpu1 = process_cpu_seconds(qemu)
            if cpu0 is not None and cpu1 is not None:
                meta["cpu_s"] = round(cpu1 - cpu0, 3)
        try:
            reply = vm.exchange(next(self._seq), req, deadline, cancel=stop)
        except Cancelled:
            meter()
            partial = vm.partial_output()
            self._sigkill(vm.name)  # the VM is destroyed now, not at its timeout
            return ExecutionResult(
                status=Status.KILLED, duration_ms=(time.monotonic() - t_exec) * 1000, message=cancel.MESSAGE,
                stdout=cap_text(partial.get("stdout", ""), request.stdout_cap),
                stderr=cap_text(partial.get("stderr", ""), request.stderr_cap),
                stdout_truncated=bool(partial.get("stdout_truncated")),
                stderr_truncated=bool(partial.get("stderr_truncated")),
                metadata=meta)
        except protocol.FrameTimeout:
            meter()
            partial = vm.partial_output()
            self._sigkill(vm.name)  # stops the code now; libvirt's destroy runs in background
            return ExecutionResult(
                status=Status.TIMEOUT, duration_ms=(time.monotonic() - t_exec) * 1000,
                message=f"time limit of {request.timeout_s:g} s exceeded; the VM was destroyed",
                stdout=cap_text(partial.get("stdout", ""), request.stdout_cap),
                stderr=cap_text(partial.get("stderr", ""), request.stderr_cap),
                stdout_truncated=bool(partial.get("stdout_truncated")),
                stderr_truncated=bool(partial.get("stderr_truncated")),
                metadata=meta)
        except (protocol.ChannelClosed, ConnectionError, BrokenPipeError):
            if not vm.accepted:
                vm.broken = True
                raise NotAccepted(vm.name) from None
            state = self.host.state(vm.name)
            return ExecutionResult(
                status=Status.KILLED, duration_ms=(time.monotonic() - t_exec) * 1000,
                message=("the VM went away before answering (power-off, reboot or crash inside "
                         f"the guest; domain {state})"), metadata=meta)
        except protocol.ProtocolError as exc:
            return ExecutionResult(status=Status.ERROR, message=f"guest protocol error: {exc}",
                                   duration_ms=(time.monotonic() - t_exec) * 1000, metadata=meta)
        meter()
        if isinstance(reply.get("guest_timing_ms"), dict):
            meta["guest_timing_ms"] = reply["guest_timing_ms"]
        if reply.get("isolation") == "workflow":   # run in a forked process, VM cleaned after
            meta["isolation"] = "workflow"
        elif reply.get("isolation") == "session":  # run in the session's process, kept
            meta["isolation"] = "session"
            meta["session_alive"] = reply.get("session_alive") is True
        meta["total_ms"] = round((time.monotonic() - t0) * 1000, 3)
        return result_from_reply(reply, request, (time.monotonic() - t_exec) * 1000, meta)


def check_private_dir(path: Path) -> None:
    """`path` must be a real folder (not a link) owned by this process's user, that nobody else
    may write to: the VMs' channel sockets live there."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SandboxUnavailable(f"{path} is not a private folder of this user (owner uid "
                                 f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}); refusing to "
                                 "put VM sockets there")


def _layer_key(layer) -> str:
    """Key of a package layer for templates and slots ("nolayer" when none is active)."""
    if layer is None or not layer.image_path:
        return "nolayer"
    return f"rt{layer.runtime_id}-{layer.layer_dir.parent.name[:12]}"
