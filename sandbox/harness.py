"""Runs user code inside an already-isolated process (guest VM worker or bubblewrap child).

Both drivers share this: it executes the code with `inputs` bound, maps the outcome to an exit
code, and writes the value of a `result` variable as JSON to an inherited file descriptor.
It depends on the standard library only, because it is copied into the guest image.

Exit codes: 0 success; the code's own `sys.exit` code; 1 for an uncaught exception;
EXIT_MEMORY_ERROR for MemoryError (so the host can report `out_of_memory`). What those mean,
the result value and the produced files are read in sandbox/outcome.py.

stdout and stderr are line-buffered while the code runs, so what it printed reaches the host
as it goes (live output) and survives a cancel or a timeout.

Figures (matplotlib): `plt.show()` saves every open figure as a PNG produced file and closes
it, and figures still open when the code ends (unless the code saved them itself with
`savefig`) are saved the same way, named `figure_1.png`,
`figure_2.png`, ... in the working directory (an existing name is never overwritten). They then
come back like any produced file (sandbox/outcome.py collect_files, with the host's caps), on
both drivers. At most MAX_FIGURES per execution; matplotlib is never imported for code that
does not import pyplot itself.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

EXIT_MEMORY_ERROR = 86
RESULT_MAX_BYTES = 16 * 1024 * 1024
MAX_FIGURES = 20          # figures saved per execution (more are closed and reported on stderr)
FIGURE_PREFIX = "figure_"


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


def _finish_output(figures) -> None:
    """After the code: save its open figures, flush what it printed (never raises)."""
    if figures is not None:
        try:
            figures.finish()
        except BaseException:  # noqa: BLE001
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - user may have closed/replaced the streams
        pass


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


class Figures:
    """Saves matplotlib figures as PNG files in `directory`: on `plt.show()` (patched into
    pyplot while the code runs, whether pyplot was imported before or is imported by the code)
    and, at `finish()`, the figures still open."""

    def __init__(self, directory: str, capture_first: bool = False):
        self.directory = directory
        self.capture_first = capture_first   # keep the first figure's PNG bytes (sessions)
        self.first_png: bytes | None = None
        self.saved: list[str] = []
        self.dropped = 0
        self._pyplot = None
        self._show = None
        self._savefig = None
        self._finder = None

    def start(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            self._patch(pyplot)
            return
        os.environ.setdefault("MPLBACKEND", "Agg")   # no display in a sandbox
        self._finder = _PyplotFinder(self._patch)
        sys.meta_path.insert(0, self._finder)

    def _patch(self, pyplot) -> None:
        self._pyplot, self._show = pyplot, getattr(pyplot, "show", None)

        def show(*args, **kwargs):
            self.save_open()
        pyplot.show = show
        figure_class = sys.modules["matplotlib.figure"].Figure
        self._savefig = original = figure_class.savefig

        def savefig(fig, *args, **kwargs):   # figures the code saved itself are not saved again
            fig._stepwell_saved = True
            return original(fig, *args, **kwargs)
        figure_class.savefig = savefig

    def save_open(self, unsaved_only: bool = False) -> None:
        pyplot = self._pyplot
        if pyplot is None:
            return
        for num in list(pyplot.get_fignums()):
            fig = pyplot.figure(num)
            if unsaved_only and getattr(fig, "_stepwell_saved", False):
                if self.capture_first and self.first_png is None:
                    import io

                    buf = io.BytesIO()
                    self._savefig(fig, buf, format="png")
                    self.first_png = buf.getvalue()
                pyplot.close(fig)
                continue
            if len(self.saved) < MAX_FIGURES:
                path = self._free_name()
                fig.savefig(path, format="png")
                self.saved.append(os.path.basename(path))
                if self.capture_first and self.first_png is None:
                    with open(path, "rb") as fh:
                        self.first_png = fh.read()
            else:
                self.dropped += 1
            pyplot.close(fig)

    def _free_name(self) -> str:
        n = len(self.saved) + 1
        while True:
            path = os.path.join(self.directory, f"{FIGURE_PREFIX}{n}.png")
            if not os.path.lexists(path):
                return path
            n += 1

    def finish(self) -> None:
        """Save the figures left open, then undo the patches (never raising)."""
        if self._finder is not None:
            try:
                sys.meta_path.remove(self._finder)
            except ValueError:
                pass
        try:
            self.save_open(unsaved_only=True)
        except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn is reported
            sys.stderr.write(f"warning: a figure could not be saved: {exc!r}\n")
        if self.dropped:
            sys.stderr.write(f"warning: {self.dropped} figure(s) over the limit of {MAX_FIGURES} "
                             "were not saved\n")
        if self._pyplot is not None and self._show is not None:
            self._pyplot.show = self._show
        if self._savefig is not None:
            sys.modules["matplotlib.figure"].Figure.savefig = self._savefig


class _PyplotFinder:
    """Import hook: when the code imports matplotlib.pyplot, `on_import(module)` runs once the
    module is loaded."""

    def __init__(self, on_import):
        self.on_import = on_import

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, on_import = spec.loader, self.on_import

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                on_import(module)

        spec.loader = Loader()
        return spec


def _line_buffered() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:  # noqa: BLE001 - not a TextIOWrapper: leave it
            pass


def run(code: str, inputs, filename: str = "<step>") -> tuple[int, dict]:
    """Run `code` in a fresh namespace of this process; return (exit code, result payload).

    stdout/stderr are whatever fds 1 and 2 are; the caller captures them. The payload is
    {"has_result": bool, "result_json": str} (see outcome.result_value). Figures are saved in
    the working directory as it is when the code starts (see Figures).
    """
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "inputs": inputs}
    exit_code = 0
    _line_buffered()
    try:
        figures = Figures(os.getcwd())
        figures.start()
    except Exception:  # noqa: BLE001 - no figure capture, the code still runs
        figures = None
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
    _finish_output(figures)
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


def _json_safe(value):
    """`value` as JSON text, trying numpy/pandas conversions, else its repr (sessions)."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    for attr in ("tolist", "item"):
        conv = getattr(value, attr, None)
        if callable(conv):
            try:
                return json.dumps(conv(), allow_nan=False)
            except Exception:  # noqa: BLE001 - try the next way
                pass
    try:
        return json.dumps(repr(value))
    except Exception:  # noqa: BLE001 - a repr that raises
        return json.dumps(f"<{type(value).__name__} object>")


_UNSET = object()
_SESSION_CODE: dict = {}     # source -> (statements code or None, last expression code or None)
SESSION_CODE_CACHE = 64      # compiled sources kept (compiling costs ~1 ms under TCG)


def _compile_session(code: str, filename: str) -> tuple:
    """(code of every statement but the last, or None; code of the last statement when it is
    an expression, or None), cached by source. A lone expression compiles in one step."""
    hit = _SESSION_CODE.get(code)
    if hit is not None:
        return hit
    try:
        out = (None, compile(code, filename, "eval"))
    except SyntaxError:
        out = None
    if out is None:   # statements (outside the except: a SyntaxError here is the code's own)
        import ast

        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        out = (compile(tree, filename, "exec") if tree.body else None, last)
    if len(_SESSION_CODE) >= SESSION_CODE_CACHE:
        _SESSION_CODE.pop(next(iter(_SESSION_CODE)))
    _SESSION_CODE[code] = out
    return out


def run_session(code: str, namespace: dict, inputs, filename: str = "<session>") -> tuple[int, dict]:
    """Run `code` in the session's `namespace` (kept by the caller between calls, like a REPL):
    every statement but the last with exec, the last with eval when it is an expression.
    Returns (exit code, payload) like run(); the payload's result is the last expression's
    value, else a `result` this code assigned, else the first matplotlib figure left open or
    shown, as {"type": "image", "format": "png", "base64_data": ...}. Non-JSON values become
    their repr. An exception (or sys.exit) ends the code, never the session."""
    import base64

    namespace["inputs"] = inputs
    before = namespace.get("result", _UNSET)
    exit_code = 0
    value = _UNSET
    _line_buffered()
    try:
        figures = Figures(os.getcwd(), capture_first=True)
        figures.start()
    except Exception:  # noqa: BLE001 - no figure capture, the code still runs
        figures = None
    try:
        body, last = _compile_session(code, filename)
        if body is not None:
            exec(body, namespace)  # noqa: S102 - this *is* the sandboxed user code
        if last is not None:
            value = eval(last, namespace)  # noqa: S307
    except SystemExit as exc:
        exit_code = _exit_code_of(exc)
    except MemoryError:
        sys.stderr.write("MemoryError: the code ran out of memory\n")
        exit_code = EXIT_MEMORY_ERROR
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is reported
        tb = exc.__traceback__   # without this function's frame (and ast's, for a SyntaxError)
        tb = None if isinstance(exc, SyntaxError) or tb is None else tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        exit_code = 1
    _finish_output(figures)
    if value is _UNSET or value is None:
        now = namespace.get("result", _UNSET)
        value = now if now is not _UNSET and now is not before else None
    if value is None and figures is not None and figures.first_png is not None:
        value = {"type": "image", "format": "png",
                 "base64_data": base64.b64encode(figures.first_png).decode()}
    if value is None:
        return exit_code, {"has_result": False}
    try:
        text = _json_safe(value)
    except BaseException:  # noqa: BLE001
        return exit_code, {"has_result": False}
    if len(text) > RESULT_MAX_BYTES:
        sys.stderr.write(f"warning: the result is {len(text)} bytes as JSON, over the limit of "
                         f"{RESULT_MAX_BYTES}; it was dropped\n")
        return exit_code, {"has_result": False}
    return exit_code, {"has_result": True, "result_json": text}


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


def _read_exact(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def session_main(spec: dict) -> None:
    """The process driver's stateful session (sandbox/process_sessions.py): requests as
    4-byte little-endian length + JSON ({"code", "inputs", "env"}) on stdin, each run with
    run_session in one namespace, each answered the same way on fd `result_fd` with
    {"exit_code", "payload"}. Ends at the end of stdin."""
    import struct

    sys.stdin = open(os.devnull)  # noqa: SIM115
    if spec.get("egress_socket"):
        try:
            start_egress_forwarder(spec["egress_socket"], spec.get("egress_listen") or ("127.0.0.1", 3128))
        except OSError as exc:
            print(f"warning: the egress forwarder did not start: {exc}", file=sys.stderr)
    os.chdir(spec.get("workdir", "/mnt/data"))
    out_fd = int(spec.get("result_fd", 3))
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        try:
            (n,) = struct.unpack("<I", _read_exact(0, 4))
            req = json.loads(_read_exact(0, n))
        except (EOFError, OSError, ValueError):
            os._exit(0)
        if req.get("env"):
            os.environ.update(req["env"])
        try:
            os.getcwd()
        except OSError:
            os.chdir(spec.get("workdir", "/mnt/data"))
        code, payload = run_session(req.get("code", ""), namespace, req.get("inputs"))
        data = json.dumps({"exit_code": code, "payload": payload}).encode()
        view = memoryview(struct.pack("<I", len(data)) + data)
        while view:
            view = view[os.write(out_fd, view):]


def main() -> None:
    """Entry point for the process driver: request JSON on stdin, result JSON on fd 3 (with
    `--session SPEC`: a stateful session, see session_main)."""
    if len(sys.argv) > 2 and sys.argv[1] == "--session":
        session_main(json.loads(sys.argv[2]))
        return
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
