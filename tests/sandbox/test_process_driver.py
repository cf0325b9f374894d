"""Process-driver specifics: privileges, cgroups, clean-up, sweep, limits (real bwrap + cgroups)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sandbox.contract import ExecutionRequest, InputFile, SandboxUnavailable, Status
from sandbox.drivers import get_driver
from sandbox.process_driver import CGROUP_PARENT, CGROUP_ROOT, UID_BASE, ProcessDriver, _mount_tmpfs


def run(drv, code, **kw):
    kw.setdefault("timeout_s", 30)
    return drv.execute(ExecutionRequest(code=code, **kw))


@pytest.mark.timeout(60)
def test_get_driver_builds_a_process_driver(process_driver):
    drv = get_driver("process")
    assert isinstance(drv, ProcessDriver) and drv.name == "process"
    with pytest.raises(ValueError):
        get_driver("nope")


@pytest.mark.timeout(30)
def test_missing_cgroups_is_a_clear_unavailable_error(tmp_path):
    drv = ProcessDriver(cgroup_root=tmp_path, base_dir=tmp_path / "base")
    with pytest.raises(SandboxUnavailable, match="cgroup v1 controller 'pids'"):
        drv.start()


@pytest.mark.timeout(60)
def test_code_runs_unprivileged_in_its_own_namespaces(process_driver):
    code = (
        "import os, socket\n"
        "st = {l.split(':')[0]: l.split(':', 1)[1].strip() for l in open('/proc/self/status')}\n"
        "try:\n"
        "    open('/usr/stepwell-write-test', 'w')\n"
        "    usr_writable = True\n"
        "except OSError:\n"
        "    usr_writable = False\n"
        "result = {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(), 'pid': os.getpid(),\n"
        "          'cap_eff': st['CapEff'], 'cap_bnd': st['CapBnd'], 'nnp': st['NoNewPrivs'],\n"
        "          'hostname': socket.gethostname(), 'usr_writable': usr_writable,\n"
        "          'ifaces': [n for _, n in socket.if_nameindex()], 'root': sorted(os.listdir('/'))}\n"
    )
    r = run(process_driver, code)
    assert r.status == Status.SUCCEEDED, r
    res = r.result
    uid = r.metadata["uid"]
    assert uid >= UID_BASE and res["uid"] == uid and res["gid"] == uid and res["groups"] in ([], [uid])
    assert int(res["cap_eff"], 16) == 0 and int(res["cap_bnd"], 16) == 0
    assert res["nnp"] == "1"
    assert res["pid"] < 10
    assert res["hostname"] == "sandbox"
    assert res["usr_writable"] is False
    assert res["ifaces"] == ["lo"]
    assert "root" not in res["root"] and "work" not in res["root"] and "home" not in res["root"]


@pytest.mark.timeout(60)
def test_cgroups_and_workdir_are_removed_after_each_execution(process_driver):
    r = run(process_driver, "import time\ntime.sleep(0.2)\nopen('/mnt/data/x', 'w').write('1')")
    assert r.status == Status.SUCCEEDED, r
    exec_id = r.metadata["execution_id"]
    assert r.metadata["cgroup"] == f"{CGROUP_PARENT}/{exec_id}"
    for ctl in ("pids", "memory", "freezer"):
        assert not (CGROUP_ROOT / ctl / CGROUP_PARENT / exec_id).exists()
    assert not (process_driver.base_dir / exec_id).exists()
    with open("/proc/self/mounts") as fh:
        assert exec_id not in fh.read()


@pytest.mark.timeout(60)
def test_cgroups_exist_while_running_with_the_requested_limits(process_driver):
    seen = {}

    def go():
        seen["r"] = run(process_driver, "import time\ntime.sleep(2)", memory_mib=200)

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 10
    found = []
    def limit_of(d: Path) -> str:
        try:
            return (d / "memory.limit_in_bytes").read_text().strip()
        except OSError:  # a group of another execution vanished meanwhile
            return ""

    while time.monotonic() < deadline and not found:
        parent = CGROUP_ROOT / "memory" / CGROUP_PARENT
        found = [d for d in parent.iterdir() if d.name.startswith(f"{os.getpid()}-")
                 and limit_of(d) == str(200 * 1024 * 1024)]
        time.sleep(0.05)
    assert found, "no memory cgroup with the requested limit appeared"
    name = found[0].name
    assert (CGROUP_ROOT / "pids" / CGROUP_PARENT / name / "pids.max").read_text().strip() == "64"
    procs: list = []
    while time.monotonic() < deadline and not procs:  # the group exists just before its first task
        procs = (CGROUP_ROOT / "pids" / CGROUP_PARENT / name / "cgroup.procs").read_text().split()
        time.sleep(0.02)
    assert procs, "the sandbox's processes are not in its pids group"
    st = process_driver.status()
    assert st["driver"] == "process" and st["busy"] >= 1
    t.join(30)
    assert seen["r"].status == Status.SUCCEEDED


@pytest.mark.timeout(60)
def test_sweep_removes_leftovers_of_dead_owners(process_driver):
    dead = next(p for p in range(32000, 2, -1) if not Path(f"/proc/{p}").exists())
    name = f"{dead}-1-deadbeef"
    for ctl in ("pids", "memory"):
        (CGROUP_ROOT / ctl / CGROUP_PARENT / name).mkdir()
    d = process_driver.base_dir / name
    (d / "data").mkdir(parents=True)
    _mount_tmpfs(d / "data", 1024 * 1024, 65534, 65534)
    removed = process_driver.sweep()
    assert removed["cgroups"] >= 1 and removed["dirs"] >= 1
    for ctl in ("pids", "memory"):
        assert not (CGROUP_ROOT / ctl / CGROUP_PARENT / name).exists()
    assert not d.exists()
    with open("/proc/self/mounts") as fh:
        assert name not in fh.read()


@pytest.mark.timeout(60)
def test_memory_error_maps_to_out_of_memory(process_driver):
    r = run(process_driver, "raise MemoryError")
    assert r.status == Status.OUT_OF_MEMORY, r
    assert r.exit_code == 86


@pytest.mark.timeout(60)
def test_oom_kill_is_reported_with_the_limit(process_driver):
    r = run(process_driver, "b = b'x' * (400 * 1024 * 1024)", memory_mib=128)
    assert r.status == Status.OUT_OF_MEMORY, r
    assert "128 MiB" in r.message


@pytest.mark.timeout(60)
def test_pids_limit_binds(process_driver):
    code = (
        "import subprocess\n"
        "procs, refused = [], 0\n"
        "for _ in range(150):\n"
        "    try:\n"
        "        procs.append(subprocess.Popen(['sleep', '30']))\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "for p in procs:\n"
        "    p.kill()\n"
        "result = {'started': len(procs), 'refused': refused}\n"
    )
    r = run(process_driver, code)
    assert r.status == Status.SUCCEEDED, r
    assert r.result["started"] < 64 and r.result["refused"] > 0, r.result


@pytest.mark.timeout(60)
def test_workdir_is_a_bounded_tmpfs_and_inputs_are_writable(process_driver):
    code = (
        "import os\n"
        "st = os.statvfs('/mnt/data')\n"
        "open('/mnt/data/in.txt', 'a').write('+more')\n"
        "os.unlink('/mnt/data/gone.txt')\n"
        "result = {'size': st.f_blocks * st.f_frsize, 'content': open('/mnt/data/in.txt').read()}\n"
    )
    r = run(process_driver, code, memory_mib=256,
            files=(InputFile("in.txt", b"data"), InputFile("gone.txt", b"bye")))
    assert r.status == Status.SUCCEEDED, r
    assert r.result["content"] == "data+more"
    assert r.result["size"] <= 256 * 1024 * 1024
    names = {f.name: f for f in r.files}
    assert names["in.txt"].content == b"data+more"  # changed input files are reported
    assert "gone.txt" not in names


@pytest.mark.timeout(60)
def test_unchanged_input_files_are_not_reported_as_produced(process_driver):
    r = run(process_driver, "open('new.txt', 'w').write('n')", files=(InputFile("in.txt", b"data"),))
    assert r.status == Status.SUCCEEDED, r
    assert [f.name for f in r.files] == ["new.txt"]


@pytest.mark.timeout(60)
def test_pool_size_bounds_concurrency():
    drv = ProcessDriver(pool_size=1).start()
    try:
        out = []

        def go():
            out.append(run(drv, "import time\ntime.sleep(1)"))

        t0 = time.monotonic()
        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        st = drv.status()
        assert st["busy"] == 1 and st["size"] == 1 and st["ready"] == 0
        for t in threads:
            t.join(30)
        assert time.monotonic() - t0 >= 2.0
        assert [r.status for r in out] == [Status.SUCCEEDED, Status.SUCCEEDED]
    finally:
        drv.close()


@pytest.mark.timeout(60)
def test_metadata_reports_driver_and_usage(process_driver):
    r = run(process_driver, "print('x' * 10)")
    md = r.metadata
    assert md["driver"] == "process"
    assert md["memory_limit_bytes"] == 512 * 1024 * 1024
    assert md["pids_max"] == 64
    assert md["stdout_bytes"] == 11
    assert md["oom_kills"] == 0


@pytest.mark.timeout(60)
def test_concurrent_executions_run_under_different_uids(process_driver):
    out = []

    def go():
        out.append(run(process_driver, "import os, time\ntime.sleep(0.5)\nresult = os.getuid()"))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    uids = [r.result for r in out]
    assert all(r.status == Status.SUCCEEDED for r in out) and len(set(uids)) == 3, uids


@pytest.mark.timeout(60)
def test_a_fixed_uid_can_be_configured():
    drv = ProcessDriver(uid=65534).start()
    try:
        r = run(drv, "import os, pwd\nresult = [os.getuid(), pwd.getpwuid(os.getuid()).pw_name]")
        assert r.status == Status.SUCCEEDED and r.result == [65534, "sandbox"], r
    finally:
        drv.close()
