"""Fixtures for the sandbox tests: real drivers, no mocks.

`driver` is parametrized over the process driver (always, skipped only when bubblewrap or the
cgroup v1 controllers are missing) and the libvirt driver (when `sandbox.libvirt.driver`
imports, libvirtd answers and the guest image is built). One instance per test module, with a
small pool, closed at the end of the module.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import pytest

from sandbox.config import SandboxConfig
from sandbox.contract import ExecutionRequest, ExecutionResult, SandboxUnavailable, Status

# Extra seconds allowed past a request's timeout before the driver must have answered.
TIMEOUT_MARGIN = {"process": 3.0, "libvirt": 20.0}


def _skip(reason: str):
    sys.stderr.write(f"\n[sandbox tests] skipping: {reason}\n")
    pytest.skip(reason)


def make_process_driver(pool_size: int = 4):
    from sandbox.process_driver import ProcessDriver

    drv = ProcessDriver(pool_size=pool_size)
    try:
        drv.start()
    except SandboxUnavailable as exc:
        _skip(f"process driver unavailable: {exc}")
    return drv


def make_libvirt_driver(pool_size: int | None = None):
    try:
        import libvirt  # noqa: F401
    except ImportError as exc:
        _skip(f"libvirt-python is not installed: {exc}")
    try:
        from sandbox.libvirt.driver import LibvirtDriver
    except ImportError as exc:
        _skip(f"sandbox.libvirt.driver does not import: {exc}")
    config = SandboxConfig.from_env()
    try:
        conn = libvirt.open(config.libvirt_uri)
        conn.close()
    except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError and friends
        _skip(f"libvirtd does not answer at {config.libvirt_uri}: {exc}")
    try:
        from sandbox.image.builder import find_image
    except ImportError as exc:
        _skip(f"sandbox.image.builder does not import: {exc}")
    if find_image(config.cache_dir) is None:
        _skip(f"no guest image under {config.cache_dir} (run `make image`)")
    size = pool_size if pool_size is not None else int(os.environ.get("SANDBOX_TEST_POOL_SIZE", "2"))
    drv = LibvirtDriver(config=config, pool_size=size)
    try:
        drv.start()
    except SandboxUnavailable as exc:
        drv.close()
        _skip(f"libvirt driver unavailable: {exc}")
    return drv


MAKERS = {"process": make_process_driver, "libvirt": make_libvirt_driver}


@dataclass
class Runner:
    """Runs code on one driver and checks that the driver still works afterwards."""

    driver: object

    @property
    def name(self) -> str:
        return self.driver.name

    @property
    def margin(self) -> float:
        return TIMEOUT_MARGIN.get(self.name, 20.0)

    def __call__(self, code: str, **kw) -> ExecutionResult:
        kw.setdefault("timeout_s", 30)
        request = ExecutionRequest(code=code, **kw)
        t0 = time.monotonic()
        result = self.driver.execute(request)
        result.metadata.setdefault("_wall_s", time.monotonic() - t0)
        assert isinstance(result, ExecutionResult)
        return result

    describe = staticmethod(lambda r: describe(r))

    def assert_healthy(self) -> None:
        """The next execution after a hostile one still works normally."""
        r = self("import os\nresult = {'ok': True, 'n': inputs['n'] * 2}", inputs={"n": 21}, timeout_s=60)
        assert r.status == Status.SUCCEEDED, describe(r)
        assert r.result == {"ok": True, "n": 42}, describe(r)


def describe(r: ExecutionResult) -> str:
    d = r.to_dict()
    for k in ("stdout", "stderr"):
        if len(d[k]) > 2000:
            d[k] = d[k][:1000] + " [...] " + d[k][-1000:]
    for f in d["files"]:
        if f.get("content_b64") and len(f["content_b64"]) > 200:
            f["content_b64"] = f["content_b64"][:200] + "..."
    return repr(d)


@pytest.fixture(scope="module", params=list(MAKERS))
def driver(request):
    drv = MAKERS[request.param]()
    yield drv
    drv.close()


@pytest.fixture
def sx(driver) -> Runner:
    return Runner(driver)


@pytest.fixture(scope="module")
def process_driver():
    drv = make_process_driver()
    yield drv
    drv.close()
