"""The real process driver with the active layer mounted the way the integration adds it
(sandbox.layers.process_bwrap_args): the allow-list is enforced inside the sandbox, pip cannot
install anything, and each result says which runtime it ran on."""
from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
from pathlib import Path

import pytest

from runtimes import actions
from runtimes.models import AllowedPackage, Runtime
from sandbox.config import SandboxConfig
from sandbox.contract import ExecutionRequest, SandboxUnavailable, Status
from sandbox.layers import active_layer, expose_layer, process_bwrap_args, unexpose_layers

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def driver(layer_env):
    from sandbox.process_driver import ProcessDriver

    cache = layer_env / "cache"
    config = dataclasses.replace(SandboxConfig.from_env(), driver="process", cache_dir=cache)
    cls = ProcessDriver
    if "layer" not in inspect.signature(ProcessDriver._bwrap_args).parameters:
        class LayeredProcessDriver(ProcessDriver):
            """Until the integration patch is applied: what it does inside _bwrap_args."""

            def _bwrap_args(self, request, workdir, tmp_bytes, exec_dir):
                layer = active_layer(cache)
                source = expose_layer(layer, self._share) if layer else None
                return super()._bwrap_args(request, workdir, tmp_bytes, exec_dir) + process_bwrap_args(layer, source)

        cls = LayeredProcessDriver
    base = Path(f"/run/stepwell-test-layers-{os.getpid()}")
    drv = cls(config, pool_size=2, base_dir=base)
    try:
        drv.start()
    except SandboxUnavailable as exc:
        pytest.skip(f"process driver unavailable: {exc}")
    yield drv
    drv.close()
    unexpose_layers(base / "share")
    assert not [p for p in _mounts() if p.startswith(str(base))], "exposed layers left mounted"
    shutil.rmtree(base, ignore_errors=True)


def _mounts():
    from sandbox.layers import _mount_points

    return _mount_points()


def run(driver, code):
    return driver.execute(ExecutionRequest(code=code, timeout_s=60))


def test_the_allow_list_is_enforced_inside_the_sandbox(driver):
    AllowedPackage.objects.all().delete()
    actions.do_add_package("tabulate", rebuild=False)
    runtime = Runtime.objects.create()
    assert actions.do_build_runtime(runtime.pk) == "ready"

    exposed = [p for p in _mounts() if "/share/layers/" in p and str(os.getpid()) in p]
    res = run(driver, "import os, tabulate\nresult = {'file': tabulate.__file__, 'rt': os.environ['STEPWELL_RUNTIME_ID']}")
    assert res.status == Status.SUCCEEDED, res.stderr
    assert res.result == {"file": "/opt/stepwell/packages/tabulate/__init__.py", "rt": str(runtime.pk)}

    res = run(driver, "import numpy")
    assert res.status == Status.FAILED
    assert "ModuleNotFoundError: No module named 'numpy'" in res.stderr

    # no installing from inside: no pip, no ensurepip wheels, no network
    res = run(driver, "import subprocess, sys\n"
                      "r = subprocess.run([sys.executable, '-m', 'pip', 'install', 'six'], capture_output=True, text=True)\n"
                      "print(r.returncode, r.stderr)\nassert r.returncode != 0")
    assert res.status == Status.SUCCEEDED, res.stderr
    assert "No module named pip" in res.stdout
    res = run(driver, "import socket\ns = socket.create_connection(('pypi.org', 443), timeout=3)")
    assert res.status == Status.FAILED and ("gaierror" in res.stderr or "OSError" in res.stderr)

    # the layer is read-only
    res = run(driver, "open('/opt/stepwell/packages/evil.py', 'w').write('x')")
    assert res.status == Status.FAILED and "Read-only file system" in res.stderr

    # every execution on one runtime shares one read-only bind mount
    now = [p for p in _mounts() if "/share/layers/" in p and str(os.getpid()) in p]
    assert len(now) == 1 and not exposed

    pkg = AllowedPackage.objects.get(normalized="tabulate")
    actions.do_update_package(pkg, enabled=False, rebuild=False)
    assert actions.do_build_runtime(Runtime.objects.create().pk) == "ready"
    res = run(driver, "import tabulate")
    assert res.status == Status.FAILED
    assert "ModuleNotFoundError: No module named 'tabulate'" in res.stderr
