"""Sandbox configuration read from environment variables, with strict parsing.

Kept free of Django so the guest-side and host-side code can import it anywhere; Django
settings re-export the same values for the web app.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.envparse import env_int


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stepwell"


@dataclass(frozen=True)
class SandboxConfig:
    driver: str            # "libvirt" or "process"
    accel: str             # "auto", "kvm" or "qemu"
    libvirt_uri: str
    pool_size: int         # warm slots kept by the sandbox service
    cache_dir: Path        # guest images (keyed by recipe hash), pool save files
    run_dir: Path          # sockets, transient files of live domains
    socket_path: Path      # the sandbox service's unix socket

    @classmethod
    def from_env(cls) -> "SandboxConfig":
        cache = Path(os.environ.get("SANDBOX_CACHE_DIR") or default_cache_dir())
        run = Path(os.environ.get("SANDBOX_RUN_DIR") or cache / "run")
        return cls(
            driver=_env_choice("SANDBOX_DRIVER", "libvirt", ("libvirt", "process")),
            accel=_env_choice("SANDBOX_ACCEL", "auto", ("auto", "kvm", "qemu")),
            libvirt_uri=os.environ.get("SANDBOX_LIBVIRT_URI") or "qemu:///system",
            pool_size=env_int("SANDBOX_POOL_SIZE", 2, 0, 64),
            cache_dir=cache,
            run_dir=run,
            socket_path=Path(os.environ.get("SANDBOX_SOCKET") or run / "sandbox.sock"),
        )
