"""Privileges around the VMs (libvirt driver): QEMU runs as the dedicated unprivileged user
of /etc/libvirt/qemu.conf (scripts/start-libvirtd.sh), never as root, and cannot write the
guest image it reads; the per-VM socket folder cannot be squatted; the guest's package preloads
(a runtime layer's .pth files included) run as the code's unprivileged uid, never as root."""
from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import shutil
import stat
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from sandbox.contract import ExecutionRequest, SandboxUnavailable, Status
from sandbox.libvirt.xml import DomainSpec

from .conftest import make_libvirt_driver

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="module")
def pooled():
    drv = make_libvirt_driver(pool_size=1)
    yield drv
    drv.close()


def _configured_qemu_ids() -> tuple[str, int, int]:
    """(user name, uid, gid) of `user` and `group` in qemu.conf (defaults: Debian's build)."""
    try:
        text = Path("/etc/libvirt/qemu.conf").read_text()
    except OSError:
        text = ""
    conf = {"user": "libvirt-qemu", "group": "libvirt-qemu"}
    for key, value in re.findall(r'^\s*(user|group)\s*=\s*"([^"]*)"', text, re.M):
        conf[key] = value
    u, g = conf["user"].lstrip("+"), conf["group"].lstrip("+")
    pw = pwd.getpwuid(int(u)) if u.isdigit() else pwd.getpwnam(u)
    gid = int(g) if g.isdigit() else grp.getgrnam(g).gr_gid
    return pw.pw_name, pw.pw_uid, gid


def _ids(status_text: str, key: str) -> list[int]:
    line = next(x for x in status_text.splitlines() if x.startswith(key + ":"))
    return [int(v) for v in line.split()[1:]]


@pytest.mark.timeout(300)
def test_qemu_runs_as_the_unprivileged_qemu_user(pooled):
    assert pooled.wait_ready(1, timeout=240), pooled.status()
    name, uid, gid = _configured_qemu_ids()
    # libvirt's own view of whom it runs QEMU as: the DAC base label of this domain type
    caps = ET.fromstring(pooled.host.conn().getCapabilities())
    labels = {b.get("type"): b.text for sm in caps.iter("secmodel")
              if sm.findtext("model") == "dac" for b in sm.iter("baselabel")}
    assert labels.get(pooled.accel) == f"+{uid}:+{gid}", labels
    live = [n for n, active in pooled.host.list_domains(pooled._prefix) if active]
    assert live, "no running domain of the pooled driver"
    groups = set(os.getgrouplist(name, gid))
    checked = 0
    for dom in live:
        pid = pooled.host.qemu_pid(dom)
        if not pid or not os.path.exists(f"/proc/{pid}"):
            continue    # gone meanwhile (a destroy in the background)
        checked += 1
        assert os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("qemu-system"), pid
        status = Path(f"/proc/{pid}/status").read_text()
        uids, gids = _ids(status, "Uid"), _ids(status, "Gid")
        print(f"QEMU of {dom}: pid {pid}, Uid {uids}, Gid {gids}, Groups {_ids(status, 'Groups')}")
        assert 0 not in uids and 0 not in gids, f"QEMU {pid} runs as root: Uid {uids}, Gid {gids}"
        assert uids == [uid] * 4, f"QEMU {pid} runs with uids {uids}, not {name} ({uid})"
        assert gids == [gid] * 4, f"QEMU {pid} runs with gids {gids}, not {gid}"
        assert 0 not in _ids(status, "Groups")
        # what QEMU opens by path is readable by it, but neither owned nor writable by it
        # (libvirt must not chown the shared image: dynamic_ownership = 0)
        spec = DomainSpec.parse(pooled.host.xml(dom))
        for path in filter(None, (spec.kernel, spec.initrd, spec.rootfs, spec.packages)):
            st = os.stat(path)
            assert st.st_uid != uid, f"{path} is owned by {name}"
            writable = st.st_mode & 0o002 or (st.st_gid in groups and st.st_mode & 0o020)
            assert not writable, f"{path} is writable by {name} ({stat.filemode(st.st_mode)})"
    assert checked, f"no QEMU process found for {live}"
    r = pooled.execute(ExecutionRequest(code="result = 6 * 7", timeout_s=60))
    assert r.status == Status.SUCCEEDED and r.result == 42, r.to_dict()
    assert r.metadata["path"] == "warm", r.metadata


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.mark.timeout(120)
def test_a_cache_qemu_cannot_read_is_refused(tmp_path):
    """The guest image in a root-owned 0700 folder QEMU's user cannot enter (like /root): the
    driver refuses to start and says why, instead of failing VM after VM."""
    from sandbox.image import find_image
    from sandbox.libvirt.driver import LibvirtDriver

    base = SandboxConfig.from_env()
    image = find_image(base.cache_dir)
    if image is None:
        pytest.skip(f"no guest image under {base.cache_dir} (run `make image`)")
    if _configured_qemu_ids()[1] == 0:
        pytest.fail("QEMU runs as root (run scripts/start-libvirtd.sh)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)  # whatever the umask and pytest's own folders allow
    cache = private / "cache"
    shutil.copytree(image.dir, cache / "images" / image.dir.name, copy_function=_link_or_copy)
    drv = LibvirtDriver(config=dataclasses.replace(base, cache_dir=cache, run_dir=cache / "run"),
                        pool_size=0)
    try:
        with pytest.raises(SandboxUnavailable, match="cannot read"):
            drv.start()
    finally:
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
