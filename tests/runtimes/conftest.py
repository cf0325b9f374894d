"""Fixtures for the runtimes tests: a staff API client and a builder of small but real wheels (the
staff user, `staff`, and the private layer cache and wheel dir, `layer_env`, are in
tests/conftest.py: other folders' tests use them too)."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from sandbox.layers import process_bwrap_args


@pytest.fixture
def staff_api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(name="stepwell_demo", version="1.0", tag="py3-none-any", *, module_code=None,
                metadata_name=None, metadata_version=None, wheel_tag=None, omit=(), extra=None) -> tuple[str, bytes]:
    """A real, installable wheel (filename, bytes) with one top-level module `name`."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}.py": (module_code or f"VERSION = {version!r}\n").encode(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {metadata_name or name}\n"
                             f"Version: {metadata_version or version}\n").encode(),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: stepwell-tests\nRoot-Is-Purelib: true\n"
                          f"Tag: {wheel_tag or tag}\n").encode(),
    }
    files.update(extra or {})
    for k in omit:
        files.pop(k.format(info=info), None)
    record = "\n".join(_record_line(k, v) for k, v in files.items()) + f"\n{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    return f"{dist}-{version}-{tag}.whl", buf.getvalue()


@pytest.fixture
def make_wheel():
    return build_wheel


def sandbox_python(layer, code: str) -> subprocess.CompletedProcess:
    """Run `/usr/bin/python3 -c code` the way the process driver would with `layer`: bubblewrap,
    no network, host /usr read-only, host dist-packages hidden, the layer read-only on PYTHONPATH.
    Falls back to a plain subprocess with -S (no site dirs) when bubblewrap is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(layer.layer_dir) if layer else ""}
        return subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True,
                              env=env, timeout=120)
    links = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        p = Path("/") / name
        if p.is_symlink():
            links += ["--symlink", os.readlink(p), f"/{name}"]
        elif p.is_dir():
            links += ["--ro-bind", str(p), f"/{name}"]
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", *links,
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv",
           "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
           *process_bwrap_args(layer), "--", "/usr/bin/python3", "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
