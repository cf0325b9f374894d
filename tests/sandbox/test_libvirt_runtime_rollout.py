"""A new package runtime rolls onto the libvirt pool without dropping executions: the allow-list
is enforced inside the VM, executions after an activation run on the new layer, and the pool
refills warm from it; a request that names an older layer (a session pool pinned to a runtime)
still runs on that one. Real libvirtd, real guest image, layers built by pip from the index."""
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest


from runtimes.builder import build_layer  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.contract import ExecutionRequest, Status  # noqa: E402
from sandbox.layers import Layer, write_active_layer  # noqa: E402

pytestmark = [pytest.mark.libvirt, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def isolated_cache():
    """A cache dir of its own (its own active-layer pointer and pool templates) that reuses the
    machine's built guest images. Beside the machine's cache, not in pytest's 0700 temporary
    folder: QEMU (an unprivileged user) reads the layer image by path."""
    base = SandboxConfig.from_env()
    images = base.cache_dir / "images"
    if not images.is_dir() or not any(images.iterdir()):
        pytest.skip(f"no guest image under {images} (run `make image`)")
    cache = Path(tempfile.mkdtemp(prefix="test-rollout-", dir=base.cache_dir))
    cache.chmod(0o755)
    (cache / "images").symlink_to(images)
    yield dataclasses.replace(base, cache_dir=cache, run_dir=cache / "run", pool_size=1)
    shutil.rmtree(cache, ignore_errors=True)


def _activate(config, runtime_id, requirements) -> Layer:
    built = build_layer(requirements, [], config.cache_dir, log=lambda line: None)
    layer = Layer(runtime_id, built.site_dir, built.image_path, built.modules)
    write_active_layer(config.cache_dir, layer)
    return layer


def test_the_pool_rolls_onto_a_new_runtime(isolated_cache):
    try:
        from sandbox.libvirt.driver import LibvirtDriver
        import libvirt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"libvirt driver unavailable: {exc}")
    config = isolated_cache
    first_layer = _activate(config, 1, ["tabulate", "six"])
    drv = LibvirtDriver(config, pool_size=1)
    try:
        drv.start()
        assert drv.wait_ready(timeout=600), drv.status()

        def run(code):
            return drv.execute(ExecutionRequest(code=code, timeout_s=120))

        first = run("import tabulate, six\nresult = six.__name__")
        assert first.status == Status.SUCCEEDED, first.stderr
        assert first.metadata.get("runtime_id") == 1
        missing = run("import pandas")
        assert missing.status == Status.FAILED
        assert "ModuleNotFoundError" in missing.stderr
        no_pip = run("import subprocess, sys\n"
                     "r = subprocess.run([sys.executable, '-m', 'pip', 'install', 'requests'], capture_output=True)\n"
                     "result = r.returncode")
        assert no_pip.result != 0

        _activate(config, 2, ["tabulate"])
        after = run("import tabulate\nresult = 'new'")
        assert after.status == Status.SUCCEEDED, after.stderr
        assert after.metadata.get("runtime_id") == 2
        dropped = run("import six")
        assert dropped.status == Status.FAILED
        assert "No module named 'six'" in dropped.stderr
        assert drv.wait_ready(timeout=600), drv.status()
        warm = run("import tabulate\nresult = 1")
        assert warm.status == Status.SUCCEEDED and warm.metadata.get("runtime_id") == 2

        # A session pool pinned to runtime 1 names its layer in each request: its VM gets that
        # layer's disk whatever is active, and keeps it for the session's later calls.
        def pinned(code):
            return drv.execute(ExecutionRequest(code=code, timeout_s=120, isolation="session", reuse_key="s1",
                                                layer=first_layer.to_dict()))

        again = pinned("import six\nx = six.__name__\nx")
        assert again.status == Status.SUCCEEDED and again.result == "six", (again.message, again.stderr)
        assert again.metadata.get("runtime_id") == 1
        assert pinned("x.upper()").result == "SIX"   # the same session
        assert run("import six").status == Status.FAILED   # the active runtime is still 2
    finally:
        drv.close()

