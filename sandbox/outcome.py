"""What an execution's outcome means, written once for both drivers and the guest agent.

Stdlib only: the guest image carries a copy (sandbox/image/builder.py). Three jobs:

- the status values (sandbox.contract.Status is built from these names);
- the result value: the code's `result` variable (the harness's payload) when it set one, else
  the last non-empty stdout line when that is JSON; strict JSON only, never raising;
- produced files: the regular files under the working directory, unchanged input files left
  out, with caps on content per file, in total and on the number of files;
- exit classification: a harness exit code, a process that ended before the harness finished,
  or a signal, each with one message whichever driver saw it.
"""
from __future__ import annotations

import json
import os
import signal
import stat

from sandbox.harness import EXIT_MEMORY_ERROR

SUCCEEDED = "succeeded"          # code ran to the end, exit code 0
FAILED = "failed"                # code raised, exited non-zero, or was killed by a signal
TIMEOUT = "timeout"              # wall-clock limit reached; the VM/process was destroyed
OUT_OF_MEMORY = "out_of_memory"  # memory limit reached (OOM killer or MemoryError)
KILLED = "killed"                # the sandbox itself went away (power-off, reboot, crash)
ERROR = "error"                  # the sandbox could not run the code (infrastructure fault)

MAX_FILES = 100                     # produced files reported per execution
MAX_LISTED = 200                    # files looked at under the working directory
FILES_BUDGET = 64 * 1024 * 1024     # bytes of produced-file content returned per execution


# ------------------------------------------------------------------------- result value ---

def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_JSON_START = frozenset('{["-0123456789tfn')


def parse_payload(raw: bytes) -> dict | None:
    """The harness's result payload ({"has_result": bool, "result_json": str}) read back from
    bytes, or None when it is missing or malformed."""
    if not raw:
        return None
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("has_result"), bool):
        return None
    if payload["has_result"] and not isinstance(payload.get("result_json"), str):
        return None
    return payload


def result_value(payload: dict | None, stdout: str):
    """The result: `result` when the code set it, else the last non-empty stdout line when it
    is JSON, else None. Strict JSON only (no NaN or Infinity) and never raising."""
    try:
        if payload and payload.get("has_result"):
            value = json.loads(payload["result_json"], parse_constant=_reject_constant)
        else:
            value = None
            for line in reversed(stdout.splitlines()):
                line = line.strip()
                if line:
                    if line[0] in _JSON_START:  # skip the exception for plain text
                        try:
                            value = json.loads(line, parse_constant=_reject_constant)
                        except ValueError:
                            value = None
                    break
        json.dumps(value, allow_nan=False)  # must survive the frame encoder
        return value
    except (ValueError, TypeError, RecursionError, KeyError, AttributeError):
        return None


# ------------------------------------------------------------------------------- files ---

def walk_files(top: str, max_files: int = MAX_LISTED, max_entries: int = 100000):
    """(relative name, size) of regular files under `top`, in name order, symlinks skipped
    (iterative, so deep trees cannot exhaust the stack)."""
    stack = [top]
    seen = 0
    found = 0
    while stack and found < max_files and seen < max_entries:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            seen += 1
            try:
                if e.is_symlink():
                    continue
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    found += 1
                    yield os.path.relpath(e.path, top), e.stat(follow_symlinks=False).st_size
                    if found >= max_files:
                        return
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to `limit` bytes of a regular file, never through a symlink (None otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            return fh.read(limit)
    except OSError:
        return None


def collect_files(workdir: str, file_cap: int, inputs: dict[str, bytes],
                  max_files: int = MAX_FILES, budget: int = FILES_BUDGET,
                  seen: dict | None = None) -> list[tuple[str, int, bytes | None]]:
    """Produced files under `workdir` as (name, size, content or None when over a cap): input
    files left as they were written are not produced files. At most `max_files` + 1 are
    listed, so that a reader can tell the code produced more than the cap.

    `seen` (stateful sessions: files outlive an execution): name -> (size, mtime_ns) of the
    files found last time; a file found again unchanged is not a produced file. It is updated
    in place to the files found now."""
    out: list[tuple[str, int, bytes | None]] = []
    now: dict = {}
    for name, size in walk_files(workdir):
        path = os.path.join(workdir, name)
        if seen is not None:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            now[name] = (st.st_size, st.st_mtime_ns)
            if seen.get(name) == now[name]:
                continue
        if len(out) > max_files:
            continue   # (only while `seen` is kept up to date: listing goes on)
        known = inputs.get(name)
        if known is not None and size == len(known) and _read_regular(path, size + 1) == known:
            continue
        content = None
        if size <= file_cap and size <= budget:
            data = _read_regular(path, file_cap + 1)
            if data is not None and len(data) <= file_cap:
                content, size = data, len(data)
                budget -= len(data)
        out.append((name, size, content))
        if len(out) > max_files and seen is None:  # one more than the cap: the host then
            break                                  # knows there were more
    if seen is not None:
        seen.clear()
        seen.update(now)
    return out


# ---------------------------------------------------------------------- classification ---

def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _limit(memory_mib: int | None) -> str:
    return f"memory limit of {memory_mib} MiB exceeded" if memory_mib else "the code ran out of memory"


def exited(code: int, finished: bool = True, memory_mib: int | None = None) -> tuple[str, str]:
    """(status, message) of the code's process ending with exit code `code`; `finished` is
    False when it ended before the harness could (os._exit)."""
    if code == 0:
        return SUCCEEDED, "" if finished else "the code exited early with code 0"
    if code == EXIT_MEMORY_ERROR and finished:
        return OUT_OF_MEMORY, f"MemoryError: {_limit(memory_mib)}"
    return FAILED, f"the code exited with code {code}" + ("" if finished else " before finishing")


def killed(sig: int, oom: bool = False, memory_mib: int | None = None) -> tuple[str, str]:
    """(status, message) of the code's process killed by signal `sig`; `oom` when the kernel's
    out-of-memory killer did it."""
    if oom:
        return OUT_OF_MEMORY, f"{_limit(memory_mib)} (killed by the out-of-memory killer, {signal_name(sig)})"
    return FAILED, f"killed by signal {signal_name(sig)}"
