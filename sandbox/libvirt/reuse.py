"""Workflow isolation on the libvirt driver: the idle VMs kept for reuse, per reuse key.

An execution with `isolation == "workflow"` (ExecutionRequest.reuse_key names the workflow
version and owner; the engine sets it) first takes an idle VM of its key; else it takes a warm
slot or a cold VM as usual. When it ends, its VM is kept for the key if the guest ran it in a
forked process and cleaned up after it (the reply says `isolation: workflow`, see
sandbox/guest/zygote.py) and it ended normally (succeeded or failed); otherwise, or after
`max_uses` executions, it is destroyed. A background thread destroys VMs idle for `idle_s`
seconds, and at most `max_idle` VMs are kept in all (the longest idle goes first).

The key also holds the memory size and the package layer: a VM is only reused for the memory it
was restored with and the layer it runs. A VM is never shared between keys.

Settings (environment): SANDBOX_REUSE_MAX_USES (100), SANDBOX_REUSE_IDLE_S (300),
SANDBOX_REUSE_MAX_IDLE (8).
"""
from __future__ import annotations

import os
import threading
import time

from sandbox.contract import ExecutionRequest, ExecutionResult, Status

DEFAULT_MAX_USES = 100
DEFAULT_IDLE_S = 300.0
DEFAULT_MAX_IDLE = 8
REUSABLE = (Status.SUCCEEDED, Status.FAILED)


def _env(name: str, default, cast):
    try:
        return cast(os.environ.get(name, default))
    except ValueError:
        return default


def key_of(request: ExecutionRequest, layer_key: str) -> tuple | None:
    """The reuse key of an execution (None: a fresh VM, destroyed after it)."""
    if request.isolation != "workflow" or not request.reuse_key:
        return None
    return (request.reuse_key, int(request.memory_mib), layer_key)


def reusable(result: ExecutionResult) -> bool:
    """The guest ran it in a forked process and cleaned up after it, and it ended normally."""
    return result.status in REUSABLE and result.metadata.get("isolation") == "workflow"


class ReuseStore:
    """Idle VMs per key, with the use and idle limits; `retire(vm)` destroys one."""

    def __init__(self, retire, max_uses: int | None = None, idle_s: float | None = None,
                 max_idle: int | None = None):
        self._retire = retire
        self.max_uses = max_uses or _env("SANDBOX_REUSE_MAX_USES", DEFAULT_MAX_USES, int)
        self.idle_s = idle_s or _env("SANDBOX_REUSE_IDLE_S", DEFAULT_IDLE_S, float)
        self.max_idle = max_idle or _env("SANDBOX_REUSE_MAX_IDLE", DEFAULT_MAX_IDLE, int)
        self._idle: dict[tuple, list[tuple[float, object]]] = {}
        self._uses: dict[str, int] = {}          # by domain name, while the VM lives
        self._lock = threading.Lock()
        self._closed = False
        self.stats = {"reused": 0, "kept": 0, "destroyed_uses": 0, "destroyed_idle": 0}
        self._reaper = threading.Thread(target=self._reap_loop, name="libvirt-reuse-reaper", daemon=True)
        self._reaper.start()

    def take(self, key: tuple):
        """An idle VM of `key` (the most recently used), or None."""
        with self._lock:
            vms = self._idle.get(key)
            if not vms:
                return None
            _t, vm = vms.pop()
            if not vms:
                del self._idle[key]
            self.stats["reused"] += 1
            return vm

    def uses(self, vm) -> int:
        with self._lock:
            return self._uses.get(vm.name, 0)

    def done(self, key: tuple, vm, result: ExecutionResult | None) -> bool:
        """The execution on `vm` ended: keep it for `key` or destroy it. True when kept."""
        keep = result is not None and not getattr(vm, "broken", False) and reusable(result)
        evict = []
        with self._lock:
            n = self._uses.get(vm.name, 0) + 1
            self._uses[vm.name] = n
            if keep and n >= self.max_uses:
                keep = False
                self.stats["destroyed_uses"] += 1
            if keep and not self._closed:
                self._idle.setdefault(key, []).append((time.monotonic(), vm))
                self.stats["kept"] += 1
                evict = self._over_limit_locked()
            else:
                keep = False
                self._uses.pop(vm.name, None)
        if not keep:
            self._retire(vm)
        for old in evict:
            self._retire(old)
        return keep

    def _over_limit_locked(self) -> list:
        out = []
        while sum(len(v) for v in self._idle.values()) > self.max_idle:
            key = min(self._idle, key=lambda k: self._idle[k][0][0])
            _t, vm = self._idle[key].pop(0)
            if not self._idle[key]:
                del self._idle[key]
            self._uses.pop(vm.name, None)
            out.append(vm)
        return out

    def reap(self, now: float | None = None) -> int:
        """Destroy the VMs idle for longer than idle_s; how many."""
        now = time.monotonic() if now is None else now
        out = []
        with self._lock:
            for key in list(self._idle):
                keep = [(t, vm) for t, vm in self._idle[key] if now - t < self.idle_s]
                out += [vm for t, vm in self._idle[key] if now - t >= self.idle_s]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            for vm in out:
                self._uses.pop(vm.name, None)
            self.stats["destroyed_idle"] += len(out)
        for vm in out:
            self._retire(vm)
        return len(out)

    def _reap_loop(self) -> None:
        while not self._closed:
            time.sleep(min(1.0, self.idle_s / 4))
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - keep reaping
                pass

    def counts(self) -> dict:
        with self._lock:
            return {"idle": sum(len(v) for v in self._idle.values()), "keys": len(self._idle),
                    "max_uses": self.max_uses, "idle_s": self.idle_s, "max_idle": self.max_idle,
                    **self.stats}

    def close(self) -> list:
        """Stop keeping VMs; the idle ones (for the caller to destroy)."""
        with self._lock:
            self._closed = True
            out = [vm for vms in self._idle.values() for _t, vm in vms]
            self._idle.clear()
            self._uses.clear()
        return out
