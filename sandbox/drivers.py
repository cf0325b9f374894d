"""Driver registry: `get_driver(name)` builds the process or libvirt driver (imported lazily).

Every driver has the same interface:
    .name                       "process" or "libvirt"
    .start()                    prepare the back end (raises SandboxUnavailable when missing)
    .execute(request, execution_id=None) -> ExecutionResult   thread-safe, one single-use sandbox per call
                                (or a reused / held one: workflow isolation, sessions)
    .cancel(execution_id) -> bool   stop that execution now (sandbox.cancel); False when not running
    .end_session(key) -> bool   destroy the sandbox held for a stateful session (isolation
                                "session", sandbox/sessions.py); False when there is none
                                (the process driver holds none: it refuses sessions)
    .status() -> dict           {"driver": ..., "ready": n, "busy": n, "refilling": n, "size": n, ...}
    .close()                    release the back end
"""
from __future__ import annotations

from sandbox.config import SandboxConfig
from sandbox.contract import SandboxUnavailable

DRIVER_NAMES = ("libvirt", "process")


def get_driver(name: str | None = None, config: SandboxConfig | None = None, pool_size: int | None = None):
    """A new, not yet started, driver. `name` defaults to the configured SANDBOX_DRIVER."""
    config = config or SandboxConfig.from_env()
    name = name or config.driver
    if name == "process":
        from sandbox.process_driver import ProcessDriver

        return ProcessDriver(config=config, pool_size=pool_size)
    if name == "libvirt":
        try:
            from sandbox.libvirt.driver import LibvirtDriver
        except ImportError as exc:
            raise SandboxUnavailable(f"the libvirt driver cannot be loaded: {exc}") from None
        return LibvirtDriver(config=config, pool_size=pool_size)
    raise ValueError(f"unknown sandbox driver {name!r}; choose one of {', '.join(DRIVER_NAMES)}")
