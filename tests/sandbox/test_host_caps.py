"""The host holds what a sandbox sends back to its own limits (sandbox/limits.py), on both
drivers: a huge or deeply nested result, many files, many bytes of files, files in
subdirectories and odd names each end with a clear status and message, the host process's
memory stays bounded, and the driver keeps working.

Some cases are honest code; others forge what the host reads, as code in the sandbox can: on
the libvirt driver a result frame written to the guest's channel (the code runs in the
process that holds it), on the process driver a result payload written to the harness's result
pipe.
"""
from __future__ import annotations

import json
import resource

import pytest

from sandbox.contract import Status
from sandbox.limits import safe_file_name

MIB = 1024 * 1024

# Code that replaces what the host reads with `FORGED_RESULT` (JSON text of the result value,
# built in the sandbox from the expression) and, on the libvirt driver, `FORGED_FILES` (JSON
# text of the frame's file list); then ends at once, so nothing honest follows.
FORGE = r'''
import inspect, json, os, select, struct
result_json = {result_expr}
files_json = {files_expr}
def write_all(fd, data):   # the guest's port is non-blocking: wait when the host reads slowly
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 1)
port = None
for n in os.listdir('/proc/self/fd'):
    try:
        if os.readlink(f'/proc/self/fd/{{n}}').startswith('/dev/vport'):
            port = int(n)
    except OSError:
        pass
if port is not None:   # the libvirt guest: one forged result frame on the channel
    body = ('{{"op":"result","status":"succeeded","exit_code":0,"stdout":"","stderr":"",'
            '"message":"","result":' + result_json + ',"files":' + files_json + '}}').encode()
    write_all(port, b"SWF1" + struct.pack(">I", len(body)) + body)
else:                  # the process driver: a forged payload on the harness's result pipe
    fd = next(f.frame.f_locals["result_fd"] for f in inspect.stack()
              if "result_fd" in f.frame.f_locals)
    write_all(fd, json.dumps({{"has_result": True, "result_json": result_json}}).encode())
os._exit(0)
'''


def forge(result_expr: str, files_expr: str = "'[]'") -> str:
    return FORGE.format(result_expr=result_expr, files_expr=files_expr)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def nested(depth: int) -> str:
    return f"x = []\nfor _ in range({depth}):\n    x = [x]\nresult = x\n"


@pytest.mark.timeout(240)
def test_a_100_mb_result_fails_clearly(sx):
    before = peak_rss_mib()
    r = sx("result = 'x' * 100_000_000", timeout_s=120)
    assert r.status in (Status.FAILED, Status.OUT_OF_MEMORY), sx.describe(r)[:3000]
    assert r.result is None
    if r.status == Status.FAILED:
        assert "over the limit" in r.stderr, sx.describe(r)
    assert peak_rss_mib() - before < 200, "the host read the 100 MB result"
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_a_result_nested_100000_deep_fails_clearly(sx):
    r = sx(nested(100000))
    assert r.status == Status.FAILED, sx.describe(r)
    assert r.result is None and "nested too deeply" in r.stderr, sx.describe(r)
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_a_result_deeper_than_the_host_limit_fails_clearly(sx):
    r = sx(nested(200))
    assert r.status == Status.FAILED, sx.describe(r)
    assert r.result is None and "SANDBOX_MAX_JSON_DEPTH" in r.message, sx.describe(r)
    ok = sx(nested(50))
    assert ok.status == Status.SUCCEEDED and ok.result is not None, sx.describe(ok)


@pytest.mark.timeout(120)
def test_deep_json_on_the_last_stdout_line_is_not_a_result(sx):
    r = sx("print('[' * 100000 + ']' * 100000)")
    assert r.status == Status.SUCCEEDED and r.result is None, sx.describe(r)
    sx.assert_healthy()


@pytest.mark.timeout(180)
def test_1000_files_fail_clearly_with_100_kept(sx):
    r = sx("for i in range(1000):\n    open(f'/mnt/data/f{i:04d}.txt', 'w').write(str(i))\n",
           timeout_s=120)
    assert r.status == Status.FAILED, sx.describe(r)
    assert "SANDBOX_MAX_FILES" in r.message, sx.describe(r)
    assert len(r.files) == 100
    sx.assert_healthy()


@pytest.mark.timeout(240)
def test_200_mb_of_files_keep_at_most_the_total(sx, monkeypatch):
    monkeypatch.setenv("SANDBOX_MAX_FILE_BYTES_TOTAL", str(16 * MIB))
    before = peak_rss_mib()
    r = sx("import os\nblock = os.urandom(4 << 20)\n"
           "for i in range(50):\n    open(f'/mnt/data/b{i:02d}.bin', 'wb').write(block)\n",
           timeout_s=150, memory_mib=512)
    assert r.status in (Status.FAILED, Status.OUT_OF_MEMORY), sx.describe(r)
    kept = sum(len(f.content) for f in r.files if f.content is not None)
    assert kept <= 16 * MIB
    if r.status == Status.FAILED:
        assert "SANDBOX_MAX_FILE_BYTES_TOTAL" in r.message, sx.describe(r)
        assert len(r.files) == 50 and all(f.size == 4 << 20 for f in r.files)
    assert peak_rss_mib() - before < 300
    monkeypatch.delenv("SANDBOX_MAX_FILE_BYTES_TOTAL")
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_a_file_in_a_subdirectory_keeps_its_path(sx):
    r = sx("import os\nos.makedirs('/mnt/data/sub/deeper')\n"
           "open('/mnt/data/sub/a.png', 'wb').write(b'PNG1')\n"
           "open('/mnt/data/sub/deeper/b.txt', 'w').write('b')\n")
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    assert {f.name: f.content for f in r.files} == {"sub/a.png": b"PNG1", "sub/deeper/b.txt": b"b"}


@pytest.mark.timeout(120)
def test_odd_names_are_cleaned(sx):
    r = sx("names = ['new\\nline.txt', 'bell\\x07.txt', 'rtl\\u202etxt.exe', 'back\\\\slash.txt',\n"
           "         'tab\\there.txt', 'ok name.txt']\n"
           "for n in names:\n    open('/mnt/data/' + n, 'w').write(n)\n")
    assert r.status == Status.SUCCEEDED, sx.describe(r)
    assert {f.name for f in r.files} == {"new_line.txt", "bell_.txt", "rtl_txt.exe",
                                         "back_slash.txt", "tab_here.txt", "ok name.txt"}, sx.describe(r)


# ----------------------------------------------------------------- forged host input ---

@pytest.mark.timeout(120)
def test_a_forged_result_nested_100000_deep(sx):
    r = sx(forge("'[' * 100000 + ']' * 100000"))
    assert r.result is None, sx.describe(r)
    if sx.name == "libvirt":
        assert r.status == Status.ERROR and "nested too deeply" in r.message, sx.describe(r)
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_a_forged_result_deeper_than_the_host_limit(sx):
    r = sx(forge("'[' * 300 + ']' * 300"))
    assert r.status == Status.FAILED and r.result is None, sx.describe(r)
    assert "SANDBOX_MAX_JSON_DEPTH" in r.message, sx.describe(r)


@pytest.mark.timeout(240)
def test_a_forged_result_over_the_result_limit_is_not_parsed(sx, monkeypatch):
    # 6 MB of JSON structure against a 1 MiB limit (a 100 MB frame takes minutes to cross
    # virtio-serial under TCG; the check is the same)
    monkeypatch.setenv("SANDBOX_MAX_RESULT_BYTES", str(MIB))
    r = sx(forge("'[' + '0,' * 3_000_000 + '0]'"), timeout_s=120)
    assert r.result is None, sx.describe(r)
    if sx.name == "libvirt":
        assert r.status == Status.ERROR and "SANDBOX_MAX_RESULT_BYTES" in r.message, sx.describe(r)
    monkeypatch.delenv("SANDBOX_MAX_RESULT_BYTES")
    sx.assert_healthy()


@pytest.mark.timeout(120)
def test_forged_files_unsafe_names_and_too_many(sx):
    if sx.name != "libvirt":
        pytest.skip("on the process driver the host lists the files itself")
    files = ("json.dumps([{'name': n, 'size': 1, 'content_b64': 'eA=='} for n in "
             "['../escape', '/etc/passwd', 'a/../../b', '', 'sub/ok.txt', 'nul\\x00.txt'] + "
             "[f'f{i}' for i in range(1000)]])")
    r = sx(forge("'1'", files))
    assert r.status == Status.FAILED, sx.describe(r)
    assert "SANDBOX_MAX_FILES" in r.message and "refused" in r.message, sx.describe(r)
    names = [f.name for f in r.files]
    assert len(names) <= 100 and "sub/ok.txt" in names and "nul_.txt" in names
    assert all(safe_file_name(n) == n for n in names), names
    assert json.dumps(r.to_dict())
    sx.assert_healthy()
