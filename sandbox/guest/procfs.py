"""Readers of /proc for the guest agent: OOM-kill count, free and total memory, the CPU model."""
from __future__ import annotations


def oom_kills() -> int:
    """Processes the kernel's out-of-memory killer has killed since boot."""
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_free_mib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemFree:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0


def mem_total_mib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return 0


def qemu_cpu_model() -> bool:
    """True under QEMU's default CPU model (it advertises features TCG does not implement)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return "QEMU Virtual CPU" in fh.read(4096)
    except OSError:
        return False


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(value))
    except OSError:
        pass
