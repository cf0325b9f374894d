"""Warm-up recipes: the requests replayed into a restored VM before its pool slot is READY.

Under TCG the first run of any code path pays for translating it again (and for page faults):
the warm-ups walk the paths a real request takes (plain and JSON output, a `result`, an
exception and its traceback, input and output files, pandas) so the user's request does not.
Each carries host entropy (the guest reseeds its RNGs) and asks the agent to empty /mnt/data
afterwards (guest.VM.exchange).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from sandbox import outcome
from sandbox.contract import SandboxError

WARMUP_PANDAS = (  # pandas only when the active runtime has it
    "try:\n"
    "    import pandas as pd\n"
    "except ImportError:\n"
    "    result = {'k': sum(range(20))}\n"
    "else:\n"
    "    df = pd.DataFrame({'k': ['a', 'b', 'a', 'c'] * 5, 'v': range(20)})\n"
    "    result = df.groupby('k')['v'].sum().to_dict()\n"
)
WARMUP_FILES = (
    "import json, os\n"
    "with open('in.txt') as fh:\n"
    "    text = fh.read()\n"
    "with open('out.txt', 'w') as fh:\n"
    "    fh.write(text.upper())\n"
    "print(json.dumps({'n': inputs['n'], 'files': sorted(os.listdir('.'))}))\n"
)


@dataclass(frozen=True)
class Warmup:
    """One request replayed into a restored VM, and the status it must end with."""
    code: str
    status: str = outcome.SUCCEEDED
    inputs: dict = field(default_factory=dict)
    files: tuple = ()

    def request(self) -> dict:
        return {"code": self.code, "inputs": self.inputs, "files": [
            {"name": n, "content_b64": base64.b64encode(c).decode()} for n, c in self.files]}


WARMUPS = (
    Warmup(WARMUP_PANDAS),
    Warmup(WARMUP_FILES, inputs={"n": 1}, files=(("in.txt", b"warm-up"),)),
    Warmup("raise ValueError('warm-up')", status=outcome.FAILED),
    Warmup("print(1)"),
    Warmup("print('hello world')"),
)
WARMUPS_UNDER_LOAD = (Warmup("print('hello world')"),)  # carries the entropy: never fewer


def warm(vm, ids, warmups=WARMUPS) -> None:
    """Replay `warmups` into `vm` (a guest.VM); `ids` yields the request ids."""
    t = time.monotonic()
    for w in warmups:
        reply = vm.exchange(next(ids), w.request(), time.monotonic() + 60, warmup=True)
        if reply.get("status") != w.status:
            raise SandboxError(f"warm-up of {vm.name} failed: {reply.get('message')} "
                               f"{reply.get('stderr', '')[-500:]}")
    vm.timings["warm_ms"] = round((time.monotonic() - t) * 1000, 1)
