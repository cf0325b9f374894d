"""What the guest agent's supervisor and worker share: paths and limits, the log, power-off,
and the state both processes see (an anonymous MAP_SHARED mapping made before the fork: flags,
the current request's id and caps, and the kept stdout and stderr bytes)."""
from __future__ import annotations

import base64
import ctypes
import mmap
import os
import struct
import time

from sandbox import outcome

WORKDIR = "/mnt/data"
USER_ID = 65534
RESULT_DIR = "/run/stepwell"
LOCK_PATH = RESULT_DIR + "/channel.lock"
READ_CHUNK = 1 << 16  # below malloc's mmap threshold: no mmap/munmap per read
KEEP_MAX = 32 * 1024 * 1024   # output bytes kept per stream in the guest (the host caps again)
DEFAULT_CAP = 1024 * 1024
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC

libc = ctypes.CDLL(None, use_errno=True)
T0 = time.monotonic()


def log(msg: str) -> None:
    try:
        os.write(2, f"[agent {time.monotonic() - T0:7.3f}] {msg}\n".encode())
    except OSError:
        pass


def poweroff() -> None:
    try:
        os.sync()
    finally:
        libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
        os._exit(0)


class Shared:
    """Header fields (int64) then the kept stdout and stderr bytes."""

    FIELDS = ("busy", "armed", "req_id", "sent_id", "out_cap", "err_cap", "file_cap",
              "out_len", "out_total", "err_len", "err_total", "oom_base")
    HEADER = struct.Struct(f"<{len(FIELDS)}q")

    def __init__(self):
        self.map = mmap.mmap(-1, self.HEADER.size + 2 * KEEP_MAX)  # MAP_SHARED | MAP_ANONYMOUS
        self._index = {name: i * 8 for i, name in enumerate(self.FIELDS)}
        self.base = {"out": self.HEADER.size, "err": self.HEADER.size + KEEP_MAX}
        self["req_id"] = self["sent_id"] = -2  # no request yet (and none unanswered)

    def __getitem__(self, name: str) -> int:
        return struct.unpack_from("<q", self.map, self._index[name])[0]

    def __setitem__(self, name: str, value: int) -> None:
        struct.pack_into("<q", self.map, self._index[name], int(value))

    def begin(self, req_id: int, req: dict) -> None:
        """A new request: its id and caps, empty output (one write: this is on the hot path)."""
        struct.pack_into("<7q", self.map, self._index["out_cap"],
                         min(int(req.get("stdout_cap", DEFAULT_CAP)), KEEP_MAX),
                         min(int(req.get("stderr_cap", DEFAULT_CAP)), KEEP_MAX),
                         int(req.get("file_cap", 8 << 20)), 0, 0, 0, 0)
        self["req_id"] = req_id

    def keep(self, stream: str, data: bytes) -> None:
        n, cap = self[f"{stream}_len"], self[f"{stream}_cap"]
        take = max(0, min(len(data), cap - n))
        if take:
            start = self.base[stream] + n
            self.map[start:start + take] = data[:take]
            self[f"{stream}_len"] = n + take
        self[f"{stream}_total"] = self[f"{stream}_total"] + len(data)

    def text(self, stream: str) -> tuple[str, bool]:
        start = self.base[stream]
        data = self.map[start:start + self[f"{stream}_len"]]
        return data.decode("utf-8", "replace"), self[f"{stream}_total"] > self[f"{stream}_len"]


def drain(fd: int, shared: Shared, stream: str) -> int:
    """Move what the pipe holds into the shared buffer (a pipe read returns all it has up to
    the size asked for: a short read means it is empty). Caller holds the channel lock."""
    n = 0
    while True:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return n
        if not data:
            return n
        shared.keep(stream, data)
        n += len(data)
        if len(data) < READ_CHUNK:
            return n


def collect_result(shared: Shared, out_fd: int, err_fd: int, inputs_written: dict,
                   seen: dict | None = None) -> dict:
    """stdout/stderr (drained to the end), produced files: the parts of a result that do not
    depend on how the code ended (`seen`: see outcome.collect_files). Caller holds the
    channel lock."""
    drain(out_fd, shared, "out")
    drain(err_fd, shared, "err")
    stdout, out_trunc = shared.text("out")
    stderr, err_trunc = shared.text("err")
    files = [{"name": name, "size": size, "truncated": content is None,
              "content_b64": None if content is None else base64.b64encode(content).decode()}
             for name, size, content in outcome.collect_files(WORKDIR, shared["file_cap"],
                                                              inputs_written, seen=seen)]
    return {"stdout": stdout, "stderr": stderr, "stdout_truncated": out_trunc,
            "stderr_truncated": err_trunc, "files": files}
