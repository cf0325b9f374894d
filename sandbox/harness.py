"""Runs user code inside an already-isolated process (guest VM worker or bubblewrap child).

Both drivers share this: it executes the code with `inputs` bound, maps the outcome to an exit
code, and writes the value of a `result` variable as JSON to an inherited file descriptor.
It depends on the standard library only, because it is copied into the guest image.

Exit codes: 0 success; the code's own `sys.exit` code; 1 for an uncaught exception;
EXIT_MEMORY_ERROR for MemoryError (so the host can report `out_of_memory`). What those mean,
the result value and the produced files are read in sandbox/outcome.py.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

EXIT_MEMORY_ERROR = 86
RESULT_MAX_BYTES = 16 * 1024 * 1024


class ResultTooLarge(Exception):
    """`result` is over RESULT_MAX_BYTES as JSON, or too deep to encode: the code fails (exit
    code 1)."""


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _result_payload(namespace: dict) -> dict:
    if "result" not in namespace:
        return {"has_result": False}
    try:
        text = json.dumps(namespace["result"], allow_nan=False)
        if len(text) > RESULT_MAX_BYTES:
            raise ResultTooLarge(f"error: `result` is {len(text)} bytes as JSON, over the limit "
                                 f"of {RESULT_MAX_BYTES}; it was dropped")
        return {"has_result": True, "result_json": text}
    except ResultTooLarge:
        raise
    except RecursionError:
        raise ResultTooLarge("error: `result` is nested too deeply to be JSON; it was dropped") from None
    except (TypeError, ValueError) as exc:
        print(f"warning: `result` is not JSON-serialisable and was dropped: {exc}", file=sys.stderr)
        return {"has_result": False}


def run(code: str, inputs, filename: str = "<step>") -> tuple[int, dict]:
    """Run `code` in a fresh namespace of this process; return (exit code, result payload).

    stdout/stderr are whatever fds 1 and 2 are; the caller captures them. The payload is
    {"has_result": bool, "result_json": str} (see outcome.result_value).
    """
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "inputs": inputs}
    exit_code = 0
    try:
        compiled = compile(code, filename, "exec")
        exec(compiled, namespace)  # noqa: S102 - this *is* the sandboxed user code
    except SystemExit as exc:
        exit_code = _exit_code_of(exc)
    except MemoryError:
        namespace.clear()
        sys.stderr.write("MemoryError: the code ran out of memory\n")
        exit_code = EXIT_MEMORY_ERROR
    except BaseException:  # noqa: BLE001 - any failure of user code is reported, not raised
        traceback.print_exc()
        exit_code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - user may have closed/replaced the streams
        pass
    try:
        payload = _result_payload(namespace)
    except ResultTooLarge as exc:
        payload = {"has_result": False}
        exit_code = exit_code or 1
        try:
            sys.stderr.write(f"{exc}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    except Exception:  # noqa: BLE001
        payload = {"has_result": False}
    return exit_code, payload


def execute(code: str, inputs, result_fd: int, filename: str = "<step>") -> int:
    """run(), then the payload as JSON to `result_fd` (the process driver reads it from there
    after the child exited); returns the exit code to use."""
    exit_code, payload = run(code, inputs, filename)
    try:
        view = memoryview(json.dumps(payload).encode())
        while view:
            n = os.write(result_fd, view)
            view = view[n:]
    except Exception:  # noqa: BLE001
        pass
    return exit_code


def start_egress_forwarder(socket_path: str, listen=("127.0.0.1", 3128)) -> None:
    """Listen on 127.0.0.1:3128 (in this sandbox's own loopback) for the code's proxy requests
    and relay each connection to the host's egress proxy at `socket_path`.

    Start-up stays cheap: the port is bound with the bare `_socket` module and one `_thread`
    waits on it; the forwarder (sandbox/egress/forwarder.py, `socket`, `threading`) is imported
    in that thread only when the code first connects."""
    import _socket
    import _thread

    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(tuple(listen))
    listener.listen(64)

    def first_connection():
        try:
            fd, _ = listener._accept()
        except OSError:
            return
        try:
            import egress_forwarder as forwarder  # beside this file in the process sandbox
        except ImportError:
            from sandbox.egress import forwarder
        forwarder.serve_from(listener.detach(), fd, forwarder.connect_unix(socket_path))

    _thread.start_new_thread(first_connection, ())


def main() -> None:
    """Entry point for the process driver: request JSON on stdin, result JSON on fd 3."""
    spec = json.load(sys.stdin)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    if spec.get("egress_socket"):
        try:
            start_egress_forwarder(spec["egress_socket"], spec.get("egress_listen") or ("127.0.0.1", 3128))
        except OSError as exc:  # the code runs without egress (its connections are refused)
            print(f"warning: the egress forwarder did not start: {exc}", file=sys.stderr)
    os.chdir(spec.get("workdir", "/mnt/data"))
    code = execute(spec["code"], spec.get("inputs"), int(spec.get("result_fd", 3)))
    os._exit(code)


if __name__ == "__main__":
    main()
