"""Issue 13 on both drivers (process; libvirt when it is available): matplotlib figures come back
as PNG produced files without the code saving them (`plt.show()`, and figures left open), and
the output of running code reaches an `on_output` callback while the code still runs."""
from __future__ import annotations

import threading

from sandbox.contract import ExecutionRequest, Status

from .conftest import describe

FIGURES = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2]); plt.title('shown')
plt.show()
fig, ax = plt.subplots()
ax.bar(['a', 'b'], [2, 5])            # left open: saved at the end
plt.figure(); plt.plot([0, 1]); plt.savefig('mine.png')   # saved by the code: not twice
result = {'open_after_show': len(plt.get_fignums())}
"""


def test_figures_come_back_as_png_files(driver):
    r = driver.execute(ExecutionRequest(code=FIGURES, timeout_s=120, memory_mib=512))
    assert r.status == Status.SUCCEEDED, describe(r)
    files = {f.name: f for f in r.files}
    assert set(files) == {"figure_1.png", "figure_2.png", "mine.png"}, describe(r)
    for f in files.values():
        assert f.content.startswith(b"\x89PNG\r\n\x1a\n"), f.name
    assert r.result == {"open_after_show": 2}   # show() closed the first figure
    # code without pyplot gets no figure and no matplotlib
    r = driver.execute(ExecutionRequest(code="import sys\nresult = 'matplotlib' in sys.modules",
                                        timeout_s=60, memory_mib=512))
    assert r.status == Status.SUCCEEDED and r.files == (), describe(r)


LIVE = """
import sys, time
print('first line')
print('warning one', file=sys.stderr)
time.sleep(4)
print('second line')
"""


def test_output_streams_while_the_code_runs_and_survives_a_cancel(driver):
    batches: list[tuple[str, str]] = []
    r = driver.execute(ExecutionRequest(code=LIVE, timeout_s=120, memory_mib=256),
                       on_output=lambda out, err: batches.append((out, err)))
    assert r.status == Status.SUCCEEDED, describe(r)
    streamed_out = "".join(b[0] for b in batches)
    streamed_err = "".join(b[1] for b in batches)
    assert "first line" in streamed_out and "warning one" in streamed_err, batches
    # the first line came in a batch of its own, before the code printed the second
    first = next(i for i, b in enumerate(batches) if "first line" in b[0])
    assert "second line" not in batches[first][0], batches
    assert streamed_out in r.stdout
    # a cancelled execution keeps what was printed before the cancel (no flush needed)
    seen = threading.Event()
    out: list[str] = []

    def on_output(o, e):
        out.append(o)
        if "before the cancel" in "".join(out):
            seen.set()

    holder = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", driver.execute(
        ExecutionRequest(code="import time\nprint('before the cancel')\ntime.sleep(120)",
                         timeout_s=200, memory_mib=256),
        execution_id="live-cancel-1", on_output=on_output)))
    t.start()
    assert seen.wait(120), out
    assert driver.cancel("live-cancel-1")
    t.join(120)
    r = holder["r"]
    assert r.status == Status.KILLED, describe(r)
    assert "before the cancel" in r.stdout, describe(r)
