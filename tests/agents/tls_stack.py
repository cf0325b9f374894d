"""A real Stepwell stack for the agent session-pool clients: uvicorn serving HTTPS with a
self-signed certificate made for the test (as `make run` does with STEPWELL_TLS_CERT/KEY), a
sandbox service on the libvirt driver wired to it through one host's sandbox socket, and an API
key for alice and for bob. Skips when libvirtd or the guest image is missing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import ssl
import time
import urllib.request

import pytest

from tests.engine.conftest import PY, Stack, _free_port
from tests.helpers.httpserver import _self_signed

POOL = "default"


def skip_without_libvirt() -> None:
    """Skip (like tests/sandbox's libvirt tests) where the libvirt driver cannot run."""
    try:
        import libvirt
    except ImportError as exc:
        pytest.skip(f"libvirt-python is not installed: {exc}")
    from sandbox.config import SandboxConfig
    from sandbox.image.builder import find_image

    config = SandboxConfig.from_env()
    try:
        libvirt.open(config.libvirt_uri).close()
    except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError and friends
        pytest.skip(f"libvirtd does not answer at {config.libvirt_uri}: {exc}")
    if find_image(config.cache_dir) is None:
        pytest.skip(f"no guest image under {config.cache_dir} (run `make image`)")


class TlsStack:
    """`stack` (tests/engine/conftest.py's Stack, no worker), `base` (https://127.0.0.1:PORT),
    `endpoint` (the default pool's management endpoint), `ca_file` (the certificate a client must
    trust), `ssl_context()` and `keys` (user name -> Bearer API key)."""

    def __init__(self, pool_size: int = 2):
        skip_without_libvirt()
        self.stack = Stack(workers=0)
        try:
            self._start(pool_size)
        except BaseException:
            self.stack.close()
            raise

    def _start(self, pool_size: int) -> None:
        stack = self.stack
        host = stack.host_env("host0")
        stack.start_sandbox("sandbox0", host, pool_size=pool_size, driver="libvirt", timeout=180)
        stack.kill("web", signal.SIGTERM)   # the stack's plain-HTTP web has no sandbox socket
        cert, key = _self_signed(("127.0.0.1", "localhost"), stack.dir)
        self.ca_file = cert
        port = _free_port()
        stack._spawn("web-tls", [PY, "-m", "uvicorn", "designer.asgi:application", "--host", "127.0.0.1",
                                 "--port", str(port), "--no-access-log",
                                 "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)], host)
        self.base = f"https://127.0.0.1:{port}"
        self.endpoint = f"{self.base}/api/sessionpools/{POOL}/"
        self._wait_for_web()
        self.keys = {user: stack.manage("create_api_key", user, "--name", "t").strip().splitlines()[-1]
                     for user in ("alice", "bob")}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _wait_for_web(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/api/schema/workflow.json", timeout=2,
                                       context=self.ssl_context()).read()
                return
            except OSError:
                if self.stack.procs["web-tls"].poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError("uvicorn over TLS did not start: " + (self.stack.dir / "web-tls.log").read_text())

    def log(self, name: str) -> str:
        """A process's log (web-tls, sandbox0), for failure messages."""
        path = self.stack.dir / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def close(self) -> None:
        """The web first (no new calls), then the sandbox service (its VMs with it), then the rest."""
        for name in ("web-tls", "sandbox0"):
            proc = self.stack.procs.pop(name, None)
            if proc is None:
                continue
            started = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            sys.stderr.write(f"[tls_stack] {name} stopped in {time.monotonic() - started:.1f} s\n")
        self.stack.close()
