"""Code egress on the libvirt driver, the parts only a VM has (the shared cases run on both drivers
in test_egress_exec.py): the guest still has no network interface, the forwarder is unprivileged,
a VM whose egress port has no host end answers at once, and a large download arrives whole
through the virtio-serial port and the mux. Real libvirtd, real guest; loopback servers only,
let through by STEPWELL_EGRESS_PRIVATE_NETWORKS=127.0.0.0/8 in these tests only.
Run under `flock /tmp/libvirt-tests.lock`."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from sandbox import layers
from sandbox.contract import ExecutionRequest, Status
from tests.helpers.httpserver import Reply
from tests.sandbox.conftest import describe, make_libvirt_driver

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="module")
def drv():
    d = make_libvirt_driver(pool_size=1)
    yield d
    d.close()


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    monkeypatch.setenv("STEPWELL_EGRESS_PRIVATE_NETWORKS", "127.0.0.0/8")


def run(drv, code, allowed=(), **kw):
    kw.setdefault("timeout_s", 120)
    return drv.execute(ExecutionRequest(code=code, allowed_hosts=list(allowed), **kw))


def test_the_guest_has_only_loopback_and_the_forwarder_is_unprivileged(drv):
    code = """
import os
procs = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid == "1":
        continue
    try:
        with open(f"/proc/{pid}/status") as fh:
            st = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        continue
    if pid != "2" and st.get("PPid", "").strip() not in ("0", "2"):   # not a kernel thread
        procs[pid] = (st["Uid"].split()[0], st["CapEff"].strip())
with open("/proc/net/tcp") as fh:
    listening = [l.split()[1] for l in fh.readlines()[1:] if l.split()[3] == "0A"]
result = {"nics": sorted(os.listdir("/sys/class/net")), "procs": procs, "listening": listening}
"""
    r = run(drv, code)
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["nics"] == ["lo"]
    assert r.result["listening"] == ["0100007F:0C38"]          # 127.0.0.1:3128, nothing else
    uids = {uid for uid, _caps in r.result["procs"].values()}
    assert uids == {"65534"}, r.result                          # worker and forwarder alike
    # the forwarder keeps no capability (the worker keeps CAP_SYS_BOOT only)
    assert "0000000000000000" in {caps for _uid, caps in r.result["procs"].values()}, r.result


def test_a_vm_whose_egress_port_has_no_host_end_answers_502_at_once(drv):
    assert drv.wait_ready(1, 600)      # the template of the active layer exists
    vm = drv._restore(drv.pool_memory_mib, "c", layers.active_layer(drv.config))
    assert vm is not None
    try:
        vm.close_egress()            # as a VM restored without its egress port connected
        time.sleep(0.5)
        code = """
import time, urllib.request, urllib.error
t = time.monotonic()
try:
    urllib.request.urlopen("http://127.0.0.1:9/", timeout=30)
    out = "reached"
except urllib.error.HTTPError as e:
    out = f"{e.code} {e.read().decode().strip()}"
result = {"out": out, "s": time.monotonic() - t}
"""
        r = drv._run(vm, ExecutionRequest(code=code, allowed_hosts=["127.0.0.1:9"], timeout_s=60),
                     {}, time.monotonic())
    finally:
        drv._retire(vm)
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["out"].startswith("502 the egress proxy is not reachable"), r.result
    assert r.result["s"] < 2, r.result
    assert r.egress == []


def test_ten_mib_arrive_whole_and_both_directions_are_counted(drv, http_server):
    blob = os.urandom(10 * 1024 * 1024)
    srv = http_server(lambda req: Reply(200, blob) if req.method == "GET"
                      else Reply(200, {"sha": hashlib.sha256(req.body).hexdigest()}))
    code = """
import hashlib, time, urllib.request, json
t = time.monotonic()
data = urllib.request.urlopen(inputs["url"], timeout=60).read()
down_s = time.monotonic() - t
up = bytes(reversed(data[:3 * 1024 * 1024]))
req = urllib.request.Request(inputs["url"], data=up, method="POST")
sha_up = json.loads(urllib.request.urlopen(req, timeout=60).read())["sha"]
result = {"sha": hashlib.sha256(data).hexdigest(), "n": len(data), "down_s": down_s,
          "up_ok": sha_up == hashlib.sha256(up).hexdigest()}
"""
    r = run(drv, code, [srv.netloc], inputs={"url": srv.url("/blob")})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["n"] == len(blob) and r.result["sha"] == hashlib.sha256(blob).hexdigest()
    assert r.result["up_ok"] is True
    down, up = r.egress
    assert down["bytes_in"] > len(blob) and up["bytes_out"] > 3 * 1024 * 1024
    assert r.result["down_s"] < 30, r.result
