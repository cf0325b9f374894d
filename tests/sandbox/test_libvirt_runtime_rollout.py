"""A new package runtime rolls onto the libvirt pool without dropping executions: the allow-list
is enforced inside the VM, executions after an activation run on the new layer, and the pool
refills warm from it. Real libvirtd, real guest image, layers built by pip from the index."""
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


def _activate(config, runtime_id, requirements):
    built = build_layer(requirements, [], config.cache_dir, log=lambda line: None)
    write_active_layer(config.cache_dir, Layer(runtime_id, built.site_dir, built.image_path, built.modules))


def test_the_pool_rolls_onto_a_new_runtime(isolated_cache):
    try:
        from sandbox.libvirt.driver import LibvirtDriver
        import libvirt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"libvirt driver unavailable: {exc}")
    config = isolated_cache
    _activate(config, 1, ["tabulate", "six"])
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
    finally:
        drv.close()


def _hand_layer(cache: Path, runtime_id: int, name: str, module: str) -> Layer:
    """A layer as the builder leaves one (`layers/<id>/site` and its ext4 image), one module."""
    from runtimes.builder import make_image
    from sandbox.layers import layers_dir

    site = layers_dir(cache) / name / "site"
    site.mkdir(parents=True)
    (site / f"{module}.py").write_text(f"NAME = {module!r}\n")
    make_image(site, site.parent / "packages.img", log=lambda line: None)
    return Layer(runtime_id, site, site.parent / "packages.img", (module,))


def test_a_request_runs_on_the_layer_it_names_not_the_active_one(isolated_cache):
    """A session pool pinned to a runtime names that runtime's layer in its requests: its VM
    gets that layer's disk, whatever is active, and keeps it for the session's later calls."""
    try:
        from sandbox.libvirt.driver import LibvirtDriver
        import libvirt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"libvirt driver unavailable: {exc}")
    config = isolated_cache
    active = _hand_layer(config.cache_dir, 1, "aaa", "only_active")
    pinned = _hand_layer(config.cache_dir, 2, "bbb", "only_pinned")
    write_active_layer(config.cache_dir, active)
    drv = LibvirtDriver(config, pool_size=0)
    try:
        drv.start()

        def session(code):
            return drv.execute(ExecutionRequest(code=code, timeout_s=300, isolation="session", reuse_key="s1",
                                                layer=pinned.to_dict()))

        first = session("import only_pinned\nx = only_pinned.NAME\nx")
        assert first.status == Status.SUCCEEDED, (first.message, first.stderr)
        assert first.result == "only_pinned" and first.metadata.get("runtime_id") == 2
        other = session("import only_active")
        assert other.status == Status.FAILED and "No module named 'only_active'" in other.stderr
        again = session("x.upper()")
        assert again.status == Status.SUCCEEDED and again.result == "ONLY_PINNED", (again.message, again.stderr)
        drv.end_session("s1")
        plain = drv.execute(ExecutionRequest(code="import only_active\nresult = only_active.NAME", timeout_s=300))
        assert plain.status == Status.SUCCEEDED and plain.result == "only_active", (plain.message, plain.stderr)
        assert plain.metadata.get("runtime_id") == 1
    finally:
        drv.close()
