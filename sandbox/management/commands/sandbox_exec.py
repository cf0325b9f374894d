"""`python manage.py sandbox_exec FILE [--driver libvirt|process] [--timeout S] [--memory MIB] [--input JSON]
[--allow-host HOST[:PORT] ...]`

Prints exactly one JSON object (ExecutionResult.to_dict()) on stdout and exits 0 whenever a result
was produced, whatever the code did. Bad arguments exit 2 with a message on stderr; the sandbox
being unavailable exits 1. `--allow-host` (repeatable) lists the hosts the code may reach through
the egress proxy (none by default); the printed result's `egress` lists every attempt.
"""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from sandbox.contract import (
    DEFAULT_MEMORY_MIB,
    DEFAULT_TIMEOUT_S,
    MAX_MEMORY_MIB,
    MAX_TIMEOUT_S,
    MIN_MEMORY_MIB,
    ContractError,
    ExecutionRequest,
    SandboxError,
)


class Command(BaseCommand):
    help = "Run a Python file (or - for stdin) in the sandbox and print the result as JSON."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="Python source file, or - to read it from stdin")
        parser.add_argument("--driver", choices=("libvirt", "process"), default=None,
                            help="run on this driver (default: the sandbox service if it answers, "
                                 "else SANDBOX_DRIVER one-shot)")
        parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                            help=f"wall-clock limit in seconds (max {MAX_TIMEOUT_S:g})")
        parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MIB,
                            help=f"memory limit in MiB ({MIN_MEMORY_MIB}..{MAX_MEMORY_MIB})")
        parser.add_argument("--input", default=None, metavar="JSON",
                            help="JSON value bound to the variable `inputs`")
        parser.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                            dest="allow_host",
                            help="a host the code may reach through the egress proxy (host, host:port or "
                                 "*.domain; without a port 80 and 443); repeatable; none by default")

    def _usage_error(self, message: str):
        sys.stderr.write(f"sandbox_exec: error: {message}\n")
        sys.stderr.flush()
        sys.exit(2)

    def handle(self, *args, **opts):
        from sandbox.client import execute

        path = opts["file"]
        try:
            if path == "-":
                code = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as fh:
                    code = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            self._usage_error(f"cannot read {path}: {exc}")
        timeout = opts["timeout"]
        if not (timeout > 0 and timeout <= MAX_TIMEOUT_S):
            self._usage_error(f"--timeout must be in (0, {MAX_TIMEOUT_S:g}] seconds, got {timeout:g}")
        memory = opts["memory"]
        if not MIN_MEMORY_MIB <= memory <= MAX_MEMORY_MIB:
            self._usage_error(f"--memory must be in [{MIN_MEMORY_MIB}, {MAX_MEMORY_MIB}] MiB, got {memory}")
        inputs = {}
        if opts["input"] is not None:
            try:
                inputs = json.loads(opts["input"])
            except ValueError as exc:
                self._usage_error(f"--input is not valid JSON: {exc}")
        try:
            request = ExecutionRequest(code=code, inputs=inputs, timeout_s=timeout, memory_mib=memory,
                                       allowed_hosts=list(opts["allow_host"]))
        except ContractError as exc:
            self._usage_error(str(exc))
        try:
            result = execute(request, driver=opts["driver"])
        except ContractError as exc:
            self._usage_error(str(exc))
        except SandboxError as exc:
            sys.stderr.write(f"sandbox_exec: sandbox unavailable: {exc}\n")
            sys.stderr.flush()
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - a driver fault: no result was produced
            sys.stderr.write(f"sandbox_exec: sandbox error: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
            sys.exit(1)
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
