"""sandbox.layers: the drivers' view of the active layer (stdlib only, atomic pointer)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.layers import ACTIVE_FILE, Layer, active_layer, clear_active_layer, layers_dir, write_active_layer


def make_layer(cache: Path, runtime_id: int, name: str = "abc") -> Layer:
    site = layers_dir(cache) / name / "site"
    site.mkdir(parents=True, exist_ok=True)
    return Layer(runtime_id=runtime_id, layer_dir=site, image_path=site.parent / "packages.img", modules=("tabulate",))


def test_it_returns_none_without_a_pointer(tmp_path):
    assert active_layer(tmp_path) is None


def test_it_reads_what_was_written_and_follows_changes(tmp_path):
    first = make_layer(tmp_path, 1, "aaa")
    write_active_layer(tmp_path, first)
    assert active_layer(tmp_path) == first
    second = make_layer(tmp_path, 2, "bbb")
    write_active_layer(tmp_path, second)
    assert active_layer(tmp_path) == second
    assert not [p for p in layers_dir(tmp_path).iterdir() if p.name.startswith(".active.")]  # no temp files
    assert oct(os.stat(layers_dir(tmp_path) / ACTIVE_FILE).st_mode & 0o777) == "0o644"
    clear_active_layer(tmp_path)
    assert active_layer(tmp_path) is None


def test_it_ignores_a_damaged_pointer_or_a_missing_layer(tmp_path):
    layer = make_layer(tmp_path, 3)
    write_active_layer(tmp_path, layer)
    (layers_dir(tmp_path) / ACTIVE_FILE).write_text("{not json")
    assert active_layer(tmp_path) is None
    (layers_dir(tmp_path) / ACTIVE_FILE).write_text(json.dumps({**layer.to_dict(), "runtime_id": "3"}))
    assert active_layer(tmp_path) is None
    write_active_layer(tmp_path, layer)
    layer.layer_dir.rmdir()
    assert active_layer(tmp_path) is None


def test_it_accepts_a_sandbox_config(tmp_path):
    from sandbox.config import SandboxConfig

    layer = make_layer(tmp_path, 4)
    write_active_layer(tmp_path, layer)
    cfg = SandboxConfig(driver="process", accel="auto", libvirt_uri="", pool_size=1, cache_dir=tmp_path,
                        run_dir=tmp_path, socket_path=tmp_path / "s")
    assert active_layer(cfg).runtime_id == 4


def test_it_imports_without_django():
    code = "import sys, sandbox.layers; assert 'django' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], env={"PATH": os.environ["PATH"]})
    assert r.stdout.strip() == "ok", r.stderr


def test_a_request_runs_on_the_layer_it_names_else_the_active_one(tmp_path):
    """A session pool pinned to a runtime names its layer in the request (layer_for); a layer
    outside this cache's layers folder, or gone from it, is refused with a message saying so."""
    import pytest

    from sandbox.contract import ContractError, ExecutionRequest
    from sandbox.layers import LayerMissing, layer_for

    active, pinned = make_layer(tmp_path, 1, "aaa"), make_layer(tmp_path, 2, "bbb")
    write_active_layer(tmp_path, active)
    assert layer_for(ExecutionRequest(code=""), tmp_path) == active
    assert layer_for(ExecutionRequest(code="", layer=pinned.to_dict()), tmp_path) == pinned
    elsewhere = tmp_path / "elsewhere" / "site"
    elsewhere.mkdir(parents=True)
    for outside in (Layer(3, elsewhere, None), Layer(3, pinned.layer_dir / ".." / ".." / ".." / "elsewhere" / "site",
                                                  None), Layer(3, pinned.layer_dir, tmp_path / "x.img")):
        with pytest.raises(LayerMissing, match="not under this sandbox's layers folder"):
            layer_for(ExecutionRequest(code="", layer=outside.to_dict()), tmp_path)
    gone = Layer(4, layers_dir(tmp_path) / "ccc" / "site", None)
    with pytest.raises(LayerMissing, match="runtime #4 is not on this sandbox host"):
        layer_for(ExecutionRequest(code="", layer=gone.to_dict()), tmp_path)
    for bad in ({"runtime_id": "7"}, {"runtime_id": 7, "layer_dir": "relative"}, "x"):
        with pytest.raises(ContractError, match="^layer: "):
            ExecutionRequest(code="", layer=bad)
    # it crosses the sandbox service's socket as JSON
    assert ExecutionRequest.from_dict(ExecutionRequest(code="", layer=pinned.to_dict()).to_dict()).layer == pinned.to_dict()
