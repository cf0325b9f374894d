"""The guest's workflow-isolation mode (sandbox/guest/zygote.py) without a VM: the real guest
worker, in a bubblewrap sandbox with its own PID namespace, uid 65534 and fresh tmpfs for /tmp,
/mnt/data, /dev/shm and /run (as in the guest), serves requests over a pipe standing for the
channel. Execution 1 leaves files, processes (a daemonised grandchild too), environment, module
state and a System V segment behind; execution 2, forked from the same worker, sees none of it,
and its RNG differs. (The same checks on a real VM: test_workflow_isolation.py, libvirt.)"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_workflow_isolation import CHECK, DIRTY

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import fcntl, json, os, sys
sys.path.insert(0, ROOT)
from sandbox import protocol
from sandbox.guest import worker as W, zygote as Z
from sandbox.guest.shared import LOCK_PATH, RESULT_DIR, Shared
os.makedirs(RESULT_DIR, exist_ok=True); open(LOCK_PATH, 'a').close()
report = os.dup(1)
Z.log = lambda m: os.write(report, ('LOG ' + m + '\n').encode())
port_r, port_w = os.pipe(); os.set_blocking(port_r, False)
out_r, out_w = os.pipe(); err_r, err_w = os.pipe()
os.set_blocking(out_r, False); os.set_blocking(err_r, False)
ctl_r, ctl_w = os.pipe()
os.dup2(out_w, 1); os.dup2(err_w, 2)
w = W.Worker(port_w, ctl_r, ctl_w, out_r, err_r, Shared(), {})
fcntl.flock(w.lock, fcntl.LOCK_EX)
w.after(scrub=False)
dec, results = protocol.FrameDecoder(), []
for i, (code, env) in enumerate(json.load(open("/srv/reqs.json"))):
    w.execute({"op": "exec", "id": i + 1, "request": {"code": code, "isolation": "workflow", "env": env}})
    data = b""
    while True:
        try:
            data += os.read(port_r, 1 << 20)
        except BlockingIOError:
            break
    results += [m for m in dec.feed(data) if m["op"] == "result"]
os.write(report, ("RESULTS " + json.dumps(results) + "\n").encode())
'''


def test_one_execution_leaves_nothing_for_the_next(tmp_path):
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed")
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT.replace("ROOT", repr("/run/src")))
    reqs = [(DIRTY, {"STEP_SECRET": "one"}), (CHECK, {}), ("raise ValueError('x')", {}), (CHECK, {})]
    (tmp_path / "reqs.json").write_text(json.dumps(reqs))   # not in argv: CHECK looks for the marker
    out = subprocess.run(
        [bwrap, "--unshare-all", "--uid", "65534", "--gid", "65534", "--ro-bind", "/", "/",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/mnt", "--dir", "/mnt/data",
         "--tmpfs", "/dev/shm", "--tmpfs", "/run", "--ro-bind", str(tmp_path), "/srv",
         "--ro-bind", str(ROOT), "/run/src",   # the checkout (wherever it is, /tmp too)
         "--die-with-parent",
         "/usr/bin/python3", "-I", "/srv/serve.py"],
        capture_output=True, text=True, timeout=120)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULTS ")]
    assert lines, (out.stdout, out.stderr)
    first, second, failed, fourth = json.loads(lines[0][len("RESULTS "):])
    assert first["status"] == "succeeded" and first["isolation"] == "workflow", first
    got = second["result"]
    assert second["status"] == "succeeded", second
    assert got["tmp"] == [] and got["data"] == [] and got["shm"] == []
    assert got["env"] is None and got["secret"] is None
    assert got["json_attr"] is None and got["module"] is False
    assert got["marker_procs"] == 0 and got["sysv_shm"] == 0
    assert got["pid"] != first["result"]["pid"] and got["uid"] == 65534 and got["cwd"] == "/mnt/data"
    assert got["rand"] != first["result"]["rand"] and got["urandom"] != first["result"]["urandom"]
    assert failed["status"] == "failed" and "ValueError: x" in failed["stderr"]
    assert fourth["status"] == "succeeded" and fourth["result"]["rand"] != got["rand"]
    assert [r["served"] for r in (first, second, failed, fourth)] == [1, 2, 3, 4]
