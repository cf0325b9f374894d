"""Hostile and everyday code against every available driver (real sandboxes, no mocks).

Each hostile case ends with a clear status, the host unaffected, and the next execution on the
same driver still working (`sx.assert_healthy()`).

Programs that only need one execution and checks on its result are rows of the EVERYDAY and
HOSTILE tables (one `Case` each, its pytest id the name it had as a test of its own); programs
that need more (files on the host, several executions, threads) stay test functions.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest

from sandbox.contract import ExecutionResult, InputFile, Status
from sandbox.protocol import encode

ENDED_BADLY = (Status.FAILED, Status.TIMEOUT, Status.OUT_OF_MEMORY, Status.KILLED)
_ANY = object()


@dataclass(frozen=True)
class Case:
    """One program, the request it is sent with, and what must hold of its result.

    `within` bounds the wall-clock seconds of the execution, given the driver's timeout margin;
    `check` holds what the fields cannot say (it gets the runner and the result)."""

    code: str
    ends: tuple[Status, ...] = (Status.SUCCEEDED,)
    request: dict = field(default_factory=dict)
    exit_code: int | None = None
    result: object = _ANY
    stdout_has: tuple[str, ...] = ()
    stdout_lacks: tuple[str, ...] = ()
    stderr_has: tuple[str, ...] = ()
    within: Callable[[float], float] | None = None
    check: Callable[[object, ExecutionResult], None] | None = None


def case(id_: str, timeout: int, code: str, **kw):
    return pytest.param(Case(code, **kw), id=id_, marks=pytest.mark.timeout(timeout))


def run_case(sx, c: Case) -> ExecutionResult:
    t0 = time.monotonic()
    r = sx(c.code, **c.request)
    elapsed = time.monotonic() - t0
    assert r.status in c.ends, sx.describe(r)
    if c.exit_code is not None:
        assert r.exit_code == c.exit_code, sx.describe(r)
    if c.result is None:
        assert r.result is None, sx.describe(r)
    elif c.result is not _ANY:
        assert r.result == c.result, sx.describe(r)
    for text in c.stdout_has:
        assert text in r.stdout, sx.describe(r)
    for text in c.stdout_lacks:
        assert text not in r.stdout, sx.describe(r)
    for text in c.stderr_has:
        assert text in r.stderr, sx.describe(r)
    if c.within is not None:
        assert elapsed < c.within(sx.margin), sx.describe(r)
    if c.check is not None:
        c.check(sx, r)
    return r


def _timeout_named(sx, r):
    assert "time" in r.message.lower(), sx.describe(r)


def _sigsegv_named(sx, r):
    assert "SIGSEGV" in r.message, sx.describe(r)


def _host_threads_bounded(sx, r):
    assert threading.active_count() < 100


def _host_can_fork(sx, r):
    assert os.system("true") == 0


def _fork_bomb_hit_the_pids_limit(sx, r):
    if sx.name == "process":
        assert r.metadata.get("pids_max_hits", 0) > 0, sx.describe(r)
    _host_can_fork(sx, r)


def _memory_named_if_out_of_memory(sx, r):
    if r.status == Status.OUT_OF_MEMORY:
        assert "memory" in r.message.lower()


def _stdout_capped_at_100_000(sx, r):
    assert r.stdout_truncated
    assert 0 < len(r.stdout.encode()) <= 100_000


def _stderr_capped_at_5000(sx, r):
    assert r.stderr_truncated and len(r.stderr.encode()) <= 5000
    assert r.stdout == "done\n" and not r.stdout_truncated


def _strict_json(sx, r):
    json.dumps(r.to_dict())


FORGED_RESULT = {"status": "succeeded", "exit_code": 0, "stdout": "", "stderr": "", "result": "FORGED",
                 "files": [], "duration_ms": 1, "message": "", "metadata": {}}
FORGED_FRAME = base64.b64encode(encode({"ok": True, "result": FORGED_RESULT})).decode()
FORGED_PAYLOAD = json.dumps({"has_result": True, "result_json": json.dumps("FORGED")})
# guest code: `cmdlines`, the command line of every process the code can see
LIST_CMDLINES = (
    "cmdlines = []\n"
    "for p in os.listdir('/proc'):\n"
    "    if p.isdigit():\n"
    "        try:\n"
    "            cmdlines.append(open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace'))\n"
    "        except OSError:\n"
    "            pass\n"
)
EVERY_JSON_TYPE = {"s": "ünï", "n": 1.5, "i": -3, "b": True, "z": None, "l": [1, [2]], "d": {"k": {}}}

# ----------------------------------------------------------------------------- everyday use
# (first: its 120 s cover the libvirt driver booting its pool)
@pytest.mark.timeout(120)
def test_result_variable_inputs_env_and_files(sx):
    code = (
        "import os, json\n"
        "data = open('/mnt/data/in.csv').read()\n"
        "os.makedirs('/mnt/data/out', exist_ok=True)\n"
        "open('/mnt/data/out/report.txt', 'w').write(data.upper())\n"
        "open('/mnt/data/blob.bin', 'wb').write(bytes(range(256)))\n"
        "print('working dir', os.getcwd())\n"
        "result = {'sum': sum(inputs['xs']), 'greeting': os.environ['GREETING'], 'cwd': os.getcwd()}\n"
    )
    r = sx(code, inputs={"xs": [1, 2, 3]}, env={"GREETING": "héllo"},
           files=(InputFile("in.csv", b"a,b\n1,2\n"),))
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    assert r.exit_code == 0
    assert r.result == {"sum": 6, "greeting": "héllo", "cwd": "/mnt/data"}
    assert "working dir /mnt/data" in r.stdout
    files = {f.name: f for f in r.files}
    assert files["out/report.txt"].content == b"A,B\n1,2\n"
    assert files["blob.bin"].content == bytes(range(256)) and files["blob.bin"].size == 256
    assert "in.csv" not in files or files["in.csv"].content == b"a,b\n1,2\n"
    assert r.metadata.get("driver") == sx.name
    assert r.duration_ms > 0


EVERYDAY = [
    case("last_line_json_is_the_result", 60,
         "print('progress...')\nimport json\nprint(json.dumps({'answer': inputs['q'] * 2}))",
         request={"inputs": {"q": 21}}, result={"answer": 42}),
    case("result_variable_wins_over_last_line", 60, "result = [1, 'two']\nprint('{\"not\": \"this\"}')",
         result=[1, "two"]),
    case("exception_is_failed_with_traceback", 60, "def f():\n    raise ValueError('boom')\nf()",
         ends=(Status.FAILED,), exit_code=1, stderr_has=("ValueError: boom",)),
    case("env_vars_are_exactly_the_requested_ones", 60,
         "import os\nresult = {k: os.environ.get(k) for k in ('A', 'B_2', 'DJANGO_SETTINGS_MODULE', 'SANDBOX_SOCKET')}",
         request={"env": {"A": "1", "B_2": "x=y z"}},
         result={"A": "1", "B_2": "x=y z", "DJANGO_SETTINGS_MODULE": None, "SANDBOX_SOCKET": None}),
    case("inputs_of_every_json_type", 60, "result = inputs", request={"inputs": EVERY_JSON_TYPE},
         result=EVERY_JSON_TYPE),
    case("stdin_is_empty_and_closed", 60, "import sys\nresult = sys.stdin.read()", result=""),
]


@pytest.mark.parametrize("c", EVERYDAY)
def test_everyday_code(sx, c):
    run_case(sx, c)


@pytest.mark.timeout(60)
def test_sys_exit_codes(sx):
    r = sx("import sys\nprint('bye')\nsys.exit(5)")
    assert r.status == Status.FAILED and r.exit_code == 5, sx.describe(r)
    r = sx("import sys\nresult = 1\nsys.exit(0)")
    assert r.status == Status.SUCCEEDED and r.exit_code == 0 and r.result == 1, sx.describe(r)


@pytest.mark.timeout(60)
def test_large_produced_file_is_reported_without_content(sx):
    r = sx("open('/mnt/data/big.bin', 'wb').write(b'x' * 3000)\nopen('/mnt/data/small.txt', 'w').write('ok')",
           file_cap=1000)
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    files = {f.name: f for f in r.files}
    assert files["big.bin"].truncated and files["big.bin"].content is None and files["big.bin"].size == 3000
    assert files["small.txt"].content == b"ok" and not files["small.txt"].truncated


# ----------------------------------------------------------------------------- hostile code
GUARDED_FORK_BOMB = (
    "import os\n"
    "while True:\n"
    "    try:\n"
    "        os.fork()\n"
    "    except OSError:\n"
    "        pass\n"
)
THREAD_BOMB = (
    "import threading, time\n"
    "n = 0\n"
    "while True:\n"
    "    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
    "    n += 1\n"
)
FORGING_FRAMES = (
    "import sys, base64\n"
    f"sys.stdout.buffer.write(base64.b64decode({FORGED_FRAME!r}))\n"
    f"sys.stdout.write({FORGED_PAYLOAD!r} + '\\n')\n"
    f"sys.stderr.buffer.write(base64.b64decode({FORGED_FRAME!r}))\n"
    "sys.stdout.write('\\x00\\x00\\x00\\x10{\"ok\": true}\\n')\n"
    "sys.stdout.flush()\n"
    "print('not json at the end')\n"
    "raise SystemExit(7)\n"
)
DEEP_NESTING = (
    "import os, sys\n"
    "sys.setrecursionlimit(10000)\n"
    "os.makedirs('/mnt/data/' + 'd/' * 1500, exist_ok=True)\n"
    "open('/mnt/data/top.txt', 'w').write('top')\n"
    "deep = []\n"
    "for _ in range(200000):\n"
    "    deep = [deep]\n"
    "result = deep\n"
    "print('[' * 200000)\n"
)

HOSTILE = [
    case("infinite_loop_times_out", 120, "while True:\n    pass", request={"timeout_s": 3},
         ends=(Status.TIMEOUT,), within=lambda margin: 3 + margin,
         check=_timeout_named),
    case("long_sleep_times_out_and_keeps_partial_output", 120,
         "import time\nprint('before', flush=True)\ntime.sleep(3600)\nprint('after')", request={"timeout_s": 3},
         ends=(Status.TIMEOUT,), within=lambda margin: 3 + margin, stdout_has=("before",), stdout_lacks=("after",)),
    # a background process that keeps stdout open must not keep the driver waiting
    case("timeout_with_a_child_holding_the_pipes", 120,
         "import subprocess, sys\n"
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
         "print('parent done')\n",
         request={"timeout_s": 3}, ends=(Status.SUCCEEDED, Status.TIMEOUT), within=lambda margin: 3 + margin),
    case("fork_bomb_is_bounded", 180, GUARDED_FORK_BOMB, request={"timeout_s": 5}, ends=ENDED_BADLY,
         within=lambda margin: 5 + margin + 5, check=_fork_bomb_hit_the_pids_limit),
    case("unguarded_fork_bomb_ends_cleanly", 180, "import os\nwhile True:\n    os.fork()", request={"timeout_s": 5},
         ends=ENDED_BADLY, check=_host_can_fork),
    case("thread_bomb_is_bounded", 180, THREAD_BOMB, request={"timeout_s": 5}, ends=ENDED_BADLY,
         check=_host_threads_bounded),
    case("memory_bomb", 180, "x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))",
         request={"memory_mib": 256, "timeout_s": 30}, ends=(Status.OUT_OF_MEMORY, Status.FAILED),
         check=_memory_named_if_out_of_memory),
    case("single_huge_allocation", 180, "x = bytearray(4 * 1024 ** 3)\nresult = len(x)",
         request={"memory_mib": 128, "timeout_s": 30}, ends=(Status.OUT_OF_MEMORY, Status.FAILED), result=None),
    case("one_gigabyte_of_stdout_is_capped", 180,
         "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
         request={"timeout_s": 120, "stdout_cap": 100_000}, ends=(Status.SUCCEEDED, Status.TIMEOUT),
         within=lambda margin: 90, check=_stdout_capped_at_100_000),
    case("huge_stderr_is_capped", 180,
         "import sys\nchunk = 'e' * (1 << 20)\nfor _ in range(200):\n    sys.stderr.write(chunk)\nprint('done')\n",
         request={"timeout_s": 60, "stderr_cap": 5000}, check=_stderr_capped_at_5000),
    case("os_exit_3", 60, "import os\nprint('about to exit', flush=True)\nos._exit(3)",
         ends=(Status.FAILED,), exit_code=3, stdout_has=("about to exit",)),
    # the child keeps the dead process's open files (pipes, and in the VM the agent's lock and
    # channel): the answer must still come, promptly, with the parent's exit code
    case("os_exit_with_a_forked_child_still_running", 60,
         "import os, time\n"
         "if os.fork() == 0:\n"
         "    time.sleep(3600)\n"
         "print('parent leaving', flush=True)\n"
         "os._exit(3)\n",
         request={"timeout_s": 30}, ends=(Status.FAILED,), exit_code=3, stdout_has=("parent leaving",),
         within=lambda margin: 15),
    case("segfault", 60, "import ctypes\nprint('crashing', flush=True)\nctypes.string_at(0)",
         ends=(Status.FAILED,), stdout_has=("crashing",), check=_sigsegv_named),
    # frames and result payloads written to stdout/stderr are only output
    case("stdout_imitating_frames_does_not_forge_a_result", 60, FORGING_FRAMES,
         ends=(Status.FAILED,), exit_code=7, result=None, stdout_has=("FORGED",)),
    # a result too deep for JSON fails the code with a clear message (issue 10, finding 4)
    case("deeply_nested_directories_and_json", 120, DEEP_NESTING, request={"timeout_s": 60}, result=None,
         ends=(Status.FAILED,), stderr_has=("nested too deeply",), check=_strict_json),
]


@pytest.mark.parametrize("c", HOSTILE)
def test_hostile_code(sx, c):
    run_case(sx, c)
    sx.assert_healthy()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target", ["/mnt/data/fill.bin", "/tmp/fill.bin"])
def test_filling_the_disk_is_bounded(sx, target):
    code = (
        "import os\n"
        "written = 0\n"
        f"f = open({target!r}, 'wb')\n"
        "try:\n"
        "    while written < 64 * 1024 ** 3:\n"
        "        f.write(b'\\0' * (1 << 20))\n"
        "        f.flush()\n"
        "        written += 1 << 20\n"
        "except OSError as exc:\n"
        "    print('stopped:', exc)\n"
        "result = written\n"
    )
    r = sx(code, memory_mib=256, timeout_s=60, file_cap=1024)
    assert r.status in (Status.SUCCEEDED, Status.FAILED, Status.OUT_OF_MEMORY, Status.TIMEOUT), sx.describe(r)
    if r.result is not None:
        assert r.result < 8 * 1024 ** 3
    for f in r.files:
        assert f.size < 8 * 1024 ** 3
    sx.assert_healthy()
    r2 = sx(f"import os\nresult = os.path.exists({target!r})")
    assert r2.status == Status.SUCCEEDED and r2.result is False, sx.describe(r2)


@pytest.fixture
def loopback_listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    yield srv
    srv.close()


@pytest.mark.timeout(120)
def test_network_is_unreachable(sx, loopback_listener):
    port = loopback_listener.getsockname()[1]
    code = (
        "import socket\n"
        "out = {}\n"
        f"for host in ('127.0.0.1', 'localhost', '::1'):\n"
        "    try:\n"
        f"        s = socket.create_connection((host, {port}), timeout=2)\n"
        "        out[host] = 'connected'\n"
        "        s.sendall(b'escaped')\n"
        "    except OSError as exc:\n"
        "        out[host] = type(exc).__name__\n"
        "result = out\n"
    )
    r = sx(code, timeout_s=30)
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    assert "connected" not in r.result.values(), r.result
    with pytest.raises(socket.timeout):
        conn, _ = loopback_listener.accept()
        conn.close()
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_host_files_are_not_reachable(sx, tmp_path):
    token = secrets.token_hex(16)
    secret_paths = ["/root/stepwell-test-secret.txt", "/tmp/stepwell-test-secret.txt", str(tmp_path / "secret.txt")]
    project_file = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "designer", "settings.py")
    for p in secret_paths:
        with open(p, "w") as fh:
            fh.write(token)
    try:
        code = (
            "import os\n"
            "found = []\n"
            f"for p in {secret_paths!r} + ['/etc/shadow', '/root/.bash_history', {project_file!r}, '/proc/1/environ']:\n"
            "    try:\n"
            "        found.append((p, open(p).read()[:200]))\n"
            "    except OSError as exc:\n"
            "        pass\n"
            "hits = []\n"
            f"for top in ('/', '/tmp', '/root', '/home', '/mnt', {os.path.dirname(os.path.dirname(project_file))!r}):\n"
            "    for root, dirs, files in os.walk(top):\n"
            "        if root.startswith(('/proc', '/sys', '/usr', '/dev')):\n"
            "            dirs[:] = []\n"
            "            continue\n"
            "        hits += [os.path.join(root, f) for f in files if 'stepwell-test-secret' in f or f == 'secret.txt']\n"
            + LIST_CMDLINES +
            "result = {'found': found, 'hits': hits, 'uid': os.getuid(), 'cmdlines': cmdlines}\n"
        )
        r = sx(code)
        assert r.status == Status.SUCCEEDED, sx.describe(r)
        assert token not in r.stdout and token not in json.dumps(r.result)
        assert r.result["hits"] == [], r.result
        assert all(not content.strip() or p == "/proc/1/environ" for p, content in r.result["found"]), r.result
        assert r.result["uid"] != 0
        # the host's processes are invisible (own pid namespace, or the guest's own kernel)
        assert not [c for c in r.result["cmdlines"] if "pytest" in c or "libvirtd" in c or "qemu" in c], r.result
        if sx.name == "process":
            assert len(r.result["cmdlines"]) < 10, r.result
    finally:
        for p in secret_paths:
            try:
                os.unlink(p)
            except OSError:
                pass
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_nothing_left_behind_for_the_next_execution(sx):
    marker = secrets.token_hex(6)
    code = (
        "import os, subprocess, sys\n"
        f"open('/mnt/data/left-{marker}', 'w').write('x')\n"
        f"open('/tmp/left-{marker}', 'w').write('x')\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time, sys; time.sleep(3600)', 'lurker-{marker}'],\n"
        "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print('left things behind')\n"
    )
    r = sx(code)
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    check = (
        "import os\n"
        + LIST_CMDLINES +
        f"result = {{'data': os.listdir('/mnt/data'), 'tmp': os.listdir('/tmp'), 'lurkers': [c for c in cmdlines if 'lurker-{marker}' in c]}}\n"
    )
    r2 = sx(check)
    assert r2.status == Status.SUCCEEDED, sx.describe(r2)
    assert f"left-{marker}" not in r2.result["data"]
    assert f"left-{marker}" not in r2.result["tmp"]
    assert r2.result["lurkers"] == []
    if sx.name == "process":  # on the host too: no process of that execution survives
        deadline = time.monotonic() + 5
        while True:
            survivors = []
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        with open(f"/proc/{p}/cmdline", "rb") as fh:
                            if f"lurker-{marker}".encode() in fh.read():
                                survivors.append(p)
                    except OSError:
                        pass
            if not survivors or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert survivors == []


@pytest.mark.timeout(120)
def test_power_off_from_inside(sx):
    """reboot(2) with RB_POWER_OFF: refused (process driver) or the VM dies (libvirt)."""
    code = (
        "import ctypes, os\n"
        "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1]\n"
        "if int(caps, 16) == 0 or inputs['in_vm']:\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    os.sync()\n"
        "    rc = libc.reboot(0x4321FEDC)\n"
        "    result = {'rc': rc, 'errno': ctypes.get_errno(), 'caps': caps}\n"
        "else:\n"
        "    result = {'skipped': 'has capabilities', 'caps': caps}\n"
    )
    if sx.name == "process":
        # Safety: only ever call reboot(2) on the host kernel from a process without capabilities.
        probe = sx("result = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1]")
        assert probe.status == Status.SUCCEEDED and int(probe.result, 16) == 0, sx.describe(probe)
    r = sx(code, timeout_s=30, inputs={"in_vm": sx.name != "process"})
    assert r.status in (Status.SUCCEEDED, Status.FAILED, Status.KILLED), sx.describe(r)
    if sx.name == "process":
        assert r.result["rc"] == -1 and r.result["errno"] == 1, r.result  # EPERM
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_concurrent_executions_do_not_see_each_other(sx):
    def code(tag):
        return (
            "import os, time\n"
            f"open('/mnt/data/mine-{tag}', 'w').write('{tag}')\n"
            f"open('/tmp/mine-{tag}', 'w').write('{tag}')\n"
            "time.sleep(1.5)\n"
            + LIST_CMDLINES +
            "result = {'data': sorted(os.listdir('/mnt/data')), 'tmp': sorted(f for f in os.listdir('/tmp') if f.startswith('mine-')),\n"
            "          'cmdlines': cmdlines}\n"
        )

    results = {}

    def go(tag):
        results[tag] = sx(code(tag), timeout_s=60)

    threads = [threading.Thread(target=go, args=(t,)) for t in ("aaa", "bbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for tag, other in (("aaa", "bbb"), ("bbb", "aaa")):
        r = results[tag]
        assert r.status == Status.SUCCEEDED, sx.describe(r)
        assert r.result["data"] == [f"mine-{tag}"], r.result
        assert r.result["tmp"] == [f"mine-{tag}"], r.result
        assert not any(f"mine-{other}" in c for c in r.result["cmdlines"])
        assert [f.name for f in r.files] == [f"mine-{tag}"]


@pytest.mark.timeout(60)
def test_urandom_differs_across_executions(sx):
    code = "import os, random\nresult = [os.urandom(16).hex(), random.random()]"
    a = sx(code)
    b = sx(code)
    assert a.status == b.status == Status.SUCCEEDED, (sx.describe(a), sx.describe(b))
    assert a.result[0] != b.result[0]
    assert a.result[1] != b.result[1]


@pytest.mark.timeout(120)
def test_symlinks_fifos_and_odd_names_in_the_workdir(sx):
    token = secrets.token_hex(16)
    secret = f"/tmp/stepwell-link-secret-{token[:8]}.txt"
    with open(secret, "w") as fh:
        fh.write(token)
    try:
        code = (
            "import os\n"
            f"os.symlink({secret!r}, '/mnt/data/link.txt')\n"
            "os.symlink('/etc/passwd', '/mnt/data/pw')\n"
            "os.symlink('/', '/mnt/data/rootdir')\n"
            "os.mkfifo('/mnt/data/fifo')\n"
            "with open(b'/mnt/data/odd-\\xff-name.txt', 'wb') as f:\n"
            "    f.write(b'odd')\n"
            "open('/mnt/data/plain.txt', 'w').write('plain')\n"
        )
        r = sx(code)
        assert r.status == Status.SUCCEEDED, sx.describe(r)
        names = {f.name for f in r.files}
        assert "plain.txt" in names
        assert not names & {"link.txt", "pw", "fifo", "rootdir"}, names
        assert not any(n.startswith("rootdir/") for n in names)
        assert token not in json.dumps(r.to_dict())
        assert any(n.startswith("odd-") for n in names), names
        json.dumps(r.to_dict())  # the result stays serialisable
    finally:
        os.unlink(secret)
    sx.assert_healthy()


@pytest.mark.timeout(60)
def test_non_standard_json_on_the_last_line(sx):
    for line in ("NaN", "-Infinity", "[1, NaN]"):
        r = sx(f"print({line!r})")
        assert r.status == Status.SUCCEEDED, sx.describe(r)
        json.dumps(r.to_dict(), allow_nan=False)  # the result stays strict JSON
