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


SYSTEM_CACHE_DIR = Path("/var/cache/stepwell")


def default_cache_dir() -> Path:
    """Where guest images, package layers and saved VMs go unless SANDBOX_CACHE_DIR says.

    For root, /var/cache/stepwell: QEMU runs as an unprivileged user (libvirt's qemu.conf,
    scripts/start-libvirtd.sh) and opens the guest kernel, initrd and disk images by path, which
    it could not do under /root (mode 0700). Other users keep their XDG cache (~/.cache/stepwell).
    """
    if os.geteuid() == 0:
        return SYSTEM_CACHE_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stepwell"


@dataclass(frozen=True)
class HostLimits:
    """What the host accepts from a sandbox (guest agent, harness, sandbox service), whatever
    the code inside chose to send: checked on the host side (sandbox/limits.py)."""
    max_result_bytes: int = 16 * 1024 * 1024       # the result value, as JSON
    max_files: int = 100                           # produced files per execution
    max_file_bytes_total: int = 64 * 1024 * 1024   # produced-file content per execution
    max_json_depth: int = 100                      # nesting of the result value
    max_frame_bytes: int = 128 * 1024 * 1024       # one frame from the guest or the service

    @classmethod
    def from_env(cls) -> "HostLimits":
        mib = 1024 * 1024
        return cls(
            max_result_bytes=env_int("SANDBOX_MAX_RESULT_BYTES", 16 * mib, 1024, 256 * mib),
            max_files=env_int("SANDBOX_MAX_FILES", 100, 0, 100000),
            max_file_bytes_total=env_int("SANDBOX_MAX_FILE_BYTES_TOTAL", 64 * mib, 0, 1024 * mib),
            max_json_depth=env_int("SANDBOX_MAX_JSON_DEPTH", 100, 1, 512),
            max_frame_bytes=env_int("SANDBOX_MAX_FRAME_BYTES", 128 * mib, mib, 256 * mib),
        )


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


def egress_limits_from_env():
    """The per-execution egress caps (sandbox.egress.proxy.EgressLimits) from STEPWELL_EGRESS_*:
    MAX_CONNECTIONS (default 32), MAX_BYTES (each way, default 64 MiB), CONNECT_TIMEOUT_S (10),
    IDLE_TIMEOUT_S (30); strict integers, a bad value raises ValueError naming the variable."""
    from sandbox.egress.proxy import EgressLimits

    default = EgressLimits()
    max_bytes = env_int("STEPWELL_EGRESS_MAX_BYTES", default.max_bytes_in, 0, 2**40)
    return EgressLimits(
        max_connections=env_int("STEPWELL_EGRESS_MAX_CONNECTIONS", default.max_connections, 0, 10_000),
        max_bytes_out=max_bytes,
        max_bytes_in=max_bytes,
        connect_timeout_s=float(env_int("STEPWELL_EGRESS_CONNECT_TIMEOUT_S", int(default.connect_timeout_s), 1, 600)),
        idle_timeout_s=float(env_int("STEPWELL_EGRESS_IDLE_TIMEOUT_S", int(default.idle_timeout_s), 1, 3600)),
    )
