"""Privileges around the VMs (libvirt driver): the per-VM socket folder cannot be squatted,
and the guest's package preloads (a runtime layer's .pth files included) run as the code's
unprivileged uid, never as root."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from sandbox.contract import ExecutionRequest, Status

from .conftest import make_libvirt_driver

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="module")
def pooled():
    drv = make_libvirt_driver(pool_size=1)
    yield drv
    drv.close()


@pytest.mark.timeout(300)
def test_preloads_ran_as_the_unprivileged_user(pooled):
    r = pooled.execute(ExecutionRequest(
        code="import os, sys\nw = sys.modules['sandbox.guest.worker']\n"
             "result = {'preload_uid': w.PRELOAD_UID, 'uid': os.getuid(),\n"
             "          'pandas': 'pandas' in sys.modules}", timeout_s=60))
    assert r.status == Status.SUCCEEDED, r.to_dict()
    assert r.result == {"preload_uid": 65534, "uid": 65534, "pandas": True}, r.result


@pytest.mark.timeout(300)
def test_a_squatted_socket_folder_in_tmp_is_not_used(monkeypatch):
    from sandbox.libvirt.driver import LibvirtDriver

    # a run dir too long for unix socket paths: the driver puts its sockets in /tmp
    long_run = Path(tempfile.mkdtemp(prefix="sw-run-")) / ("r" * 90)
    monkeypatch.setenv("SANDBOX_RUN_DIR", str(long_run))
    n = next(LibvirtDriver._instances)
    squats = []
    for i in range(n + 1, n + 6):   # the names the old code would have picked
        d = Path(tempfile.gettempdir()) / f"stepwell-{os.getpid()}-{i}"
        d.mkdir(mode=0o777)
        os.chmod(d, 0o777)
        os.chown(d, 65534, 65534)
        squats.append(d)
    drv = None
    try:
        drv = LibvirtDriver(config=SandboxConfig.from_env(), pool_size=0)
        drv.start()
        sock_dir = drv._sock_dir
        assert sock_dir not in squats
        st = os.lstat(sock_dir)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        assert stat.S_IMODE(st.st_mode) & 0o022 == 0
        r = drv.execute(ExecutionRequest(code="result = 1", timeout_s=60))
        assert r.status == Status.SUCCEEDED and r.result == 1, r.to_dict()
        for d in squats:
            assert list(d.iterdir()) == [], f"the driver used the squatted folder {d}"
    finally:
        if drv is not None:
            drv.close()
        for d in squats:
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(long_run.parent, ignore_errors=True)
