"""The execution contract: what a caller asks the sandbox for and what it gets back.

Plain dataclasses with JSON (de)serialisation and strict validation. Shared by every driver,
the sandbox service's socket protocol, the CLI and the workflow engine.
"""
from __future__ import annotations

import base64
import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox import outcome

DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 600.0
DEFAULT_MEMORY_MIB = 512
MIN_MEMORY_MIB = 128
MAX_MEMORY_MIB = 8192
DEFAULT_OUTPUT_CAP = 1024 * 1024          # bytes kept of stdout and of stderr, each
DEFAULT_FILE_CAP = 8 * 1024 * 1024        # bytes of content returned per produced file
MAX_INPUT_FILES_BYTES = 64 * 1024 * 1024  # total size of input files
MAX_ALLOWED_HOSTS = 1000                  # entries of ExecutionRequest.allowed_hosts
ISOLATION_LEVELS = ("execution", "workflow", "session")  # ExecutionRequest.isolation (see below)
MAX_REUSE_KEY = 200
DEFAULT_SESSION_IDLE_S = 300.0            # ExecutionRequest.session_idle_s
MAX_SESSION_IDLE_S = 86400.0
WORKDIR = "/mnt/data"


class ContractError(ValueError):
    """A request or result that does not fit the contract (message names the field)."""


class Status(str, enum.Enum):
    """Closed set of outcomes of one execution (the values are named in sandbox.outcome, which
    the guest agent and both drivers share)."""

    SUCCEEDED = outcome.SUCCEEDED          # code ran to the end, exit code 0
    FAILED = outcome.FAILED                # code raised, exited non-zero, or was killed by a signal
    TIMEOUT = outcome.TIMEOUT              # wall-clock limit reached; the VM/process was destroyed
    OUT_OF_MEMORY = outcome.OUT_OF_MEMORY  # memory limit reached (OOM killer or MemoryError)
    KILLED = outcome.KILLED                # the sandbox itself went away (power-off, reboot, crash)
    ERROR = outcome.ERROR                  # the sandbox could not run the code (infrastructure fault)


@dataclass(frozen=True)
class InputFile:
    """A file placed under /mnt/data before the code starts."""

    name: str
    content: bytes

    def to_dict(self) -> dict:
        return {"name": self.name, "content_b64": base64.b64encode(self.content).decode()}

    @classmethod
    def from_dict(cls, d: dict) -> "InputFile":
        name = d.get("name")
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ContractError(f"files[].name must be a plain file name, got {name!r}")
        try:
            content = base64.b64decode(d.get("content_b64", ""), validate=True)
        except Exception as exc:  # binascii.Error
            raise ContractError(f"files[{name}].content_b64 is not base64: {exc}") from None
        return cls(name=name, content=content)


@dataclass(frozen=True)
class ExecutionRequest:
    """One execution of `code` with `inputs` (a JSON value exposed to the code as `inputs`)."""

    code: str
    inputs: Any = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[InputFile, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mib: int = DEFAULT_MEMORY_MIB
    stdout_cap: int = DEFAULT_OUTPUT_CAP
    stderr_cap: int = DEFAULT_OUTPUT_CAP
    file_cap: int = DEFAULT_FILE_CAP
    # Hosts the code may reach through the egress proxy (sandbox.egress): `host`, `host:port`,
    # `*.domain`; empty = nothing is reachable.
    allowed_hosts: list[str] = field(default_factory=list)
    # "execution": a fresh sandbox for this execution alone. "workflow": a VM may be reused for
    # later executions with the same `reuse_key` (the engine sets it to the workflow version and
    # owner), each in a fresh process with the VM cleaned in between (sandbox/libvirt/reuse.py).
    # The process driver always runs a fresh sandbox and accepts both.
    # "session": a stateful session (sandbox/sessions.py): `reuse_key` names it; the first
    # execution takes a VM that is then held for the key, and later ones run in the same Python
    # process (variables, imports, files under /mnt/data survive, like a REPL). The VM is
    # destroyed after `session_idle_s` idle seconds, by end_session, or when an execution ends
    # in timeout / out_of_memory / killed / error.
    isolation: str = "execution"
    reuse_key: str = ""
    session_idle_s: float = DEFAULT_SESSION_IDLE_S
    # The package layer to run on (sandbox.layers.Layer.to_dict(): a session pool pinned to a
    # runtime); None = the active runtime's. The sandbox runs it only when its folder and image
    # lie under its own cache's layers folder (sandbox.layers.layer_for).
    layer: dict | None = None

    def __post_init__(self):
        if not isinstance(self.code, str):
            raise ContractError("code must be a string")
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise ContractError("env must map strings to strings")
        for k in self.env:
            if not k or "=" in k or "\0" in k:
                raise ContractError(f"env name {k!r} is not a valid variable name")
        if not (0 < float(self.timeout_s) <= MAX_TIMEOUT_S):
            raise ContractError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {self.timeout_s}")
        if not (MIN_MEMORY_MIB <= int(self.memory_mib) <= MAX_MEMORY_MIB):
            raise ContractError(
                f"memory_mib must be in [{MIN_MEMORY_MIB}, {MAX_MEMORY_MIB}], got {self.memory_mib}"
            )
        for name in ("stdout_cap", "stderr_cap", "file_cap"):
            if int(getattr(self, name)) < 0:
                raise ContractError(f"{name} must be >= 0")
        if sum(len(f.content) for f in self.files) > MAX_INPUT_FILES_BYTES:
            raise ContractError(f"input files exceed {MAX_INPUT_FILES_BYTES} bytes in total")
        self._check_allowed_hosts()
        if self.isolation not in ISOLATION_LEVELS:
            raise ContractError(f"isolation must be one of {list(ISOLATION_LEVELS)}, got {self.isolation!r}")
        if not isinstance(self.reuse_key, str) or len(self.reuse_key) > MAX_REUSE_KEY:
            raise ContractError(f"reuse_key must be a string of at most {MAX_REUSE_KEY} characters")
        if self.isolation in ("workflow", "session") and not self.reuse_key:
            raise ContractError(f"isolation {self.isolation!r} needs a reuse_key")
        try:
            idle = float(self.session_idle_s)
        except (TypeError, ValueError):
            raise ContractError("session_idle_s must be a number") from None
        if isinstance(self.session_idle_s, bool) or not (0 < idle <= MAX_SESSION_IDLE_S):
            raise ContractError(f"session_idle_s must be in (0, {MAX_SESSION_IDLE_S:g}], "
                                f"got {self.session_idle_s!r}")
        if self.layer is not None:
            from sandbox.layers import Layer

            try:
                Layer.from_dict(self.layer)
            except ValueError as exc:
                raise ContractError(f"layer: {exc}") from None

    def _check_allowed_hosts(self) -> None:
        from sandbox.egress.policy import EntryError, parse_entry

        hosts = self.allowed_hosts
        if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
            raise ContractError("allowed_hosts must be a list of strings")
        if len(hosts) > MAX_ALLOWED_HOSTS:
            raise ContractError(f"allowed_hosts has more than {MAX_ALLOWED_HOSTS} entries")
        for i, entry in enumerate(hosts):
            try:
                parse_entry(entry)
            except EntryError as exc:
                raise ContractError(f"allowed_hosts[{i}]: {exc}") from None
        object.__setattr__(self, "allowed_hosts", list(hosts))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["files"] = [f.to_dict() for f in self.files]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExecutionRequest":
        if not isinstance(d, dict):
            raise ContractError("request must be a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ContractError(f"unknown request fields: {sorted(unknown)}")
        d = dict(d)
        d["files"] = tuple(InputFile.from_dict(f) for f in d.get("files", ()))
        return cls(**d)


@dataclass(frozen=True)
class OutputFile:
    """A file the code left under /mnt/data; `content` is None when larger than the cap."""

    name: str
    size: int
    content: bytes | None = None
    truncated: bool = False

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "size": self.size,
            "truncated": self.truncated,
            "content_b64": None if self.content is None else base64.b64encode(self.content).decode(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "OutputFile":
        c = d.get("content_b64")
        return cls(
            name=d["name"], size=int(d["size"]), truncated=bool(d.get("truncated")),
            content=None if c is None else base64.b64decode(c),
        )


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one execution. `result` is the JSON value of the code's `result` variable,
    else the last stdout line when that parses as JSON, else None."""

    status: Status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    result: Any = None
    files: tuple[OutputFile, ...] = ()
    duration_ms: float = 0.0
    message: str = ""
    metadata: dict = field(default_factory=dict)
    # Every connection the code attempted through the egress proxy (sandbox.egress.proxy records).
    egress: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "result": self.result,
            "files": [f.to_dict() for f in self.files],
            "duration_ms": round(self.duration_ms, 3),
            "message": self.message,
            "metadata": self.metadata,
            "egress": list(self.egress),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ExecutionResult":
        return cls(
            status=Status(d["status"]),
            exit_code=d.get("exit_code"),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            stdout_truncated=bool(d.get("stdout_truncated")),
            stderr_truncated=bool(d.get("stderr_truncated")),
            result=d.get("result"),
            files=tuple(OutputFile.from_dict(f) for f in d.get("files", ())),
            duration_ms=float(d.get("duration_ms", 0.0)),
            message=d.get("message", ""),
            metadata=dict(d.get("metadata") or {}),
            egress=list(d.get("egress") or []),
        )


class SandboxError(Exception):
    """Base of the sandbox's own exceptions (drivers translate their back-end errors to these)."""


class SandboxUnavailable(SandboxError):
    """The driver's back end (libvirtd, bubblewrap, the image) is missing or not answering."""
