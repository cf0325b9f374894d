"""Guest image builder: cached by recipe hash, atomic, and the artefacts have the right shape."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from sandbox.image import builder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image():
    cache = SandboxConfig.from_env().cache_dir
    if builder.find_image(cache) is None:
        if os.geteuid() != 0:
            pytest.skip("building the guest image needs root")
        builder.build_image(cache)  # first build: a few minutes
    return builder.find_image(cache)


def test_recipe_id_is_stable_and_covers_the_package_list(monkeypatch):
    a = builder.recipe_id()
    assert a == builder.recipe_id() and len(a) == 64
    monkeypatch.setattr(builder, "PACKAGES", builder.PACKAGES + ("python3-scipy",))
    assert builder.recipe_id() != a


@pytest.mark.slow
def test_second_build_is_a_fast_cache_hit(image, capsys):
    t = time.monotonic()
    again = builder.build_image(SandboxConfig.from_env().cache_dir)
    assert time.monotonic() - t < 5
    assert again == image
    assert "up to date" in capsys.readouterr().err
    leftovers = [p for p in image.dir.parent.iterdir() if p.name.startswith(".build-")]
    assert not [p for p in leftovers if p.name.startswith(f".build-{image.id[:12]}")]


@pytest.mark.slow
def test_image_artefacts(image):
    assert image.id == builder.recipe_id()
    assert image.dir.name == image.id
    with open(image.kernel, "rb") as fh:
        assert fh.read(4) == b"\x7fELF"  # decompressed for PVH boot
    with open(image.rootfs, "rb") as fh:
        fh.seek(1024 + 56)
        assert fh.read(2) == b"\x53\xef"  # ext4 superblock magic
    assert not os.access(image.rootfs, os.W_OK) or os.geteuid() == 0
    assert os.stat(image.rootfs).st_mode & 0o222 == 0
    listing = subprocess.run(["cpio", "-t", "--quiet"], stdin=open(image.initrd, "rb"),
                             capture_output=True, text=True, check=True).stdout.split()
    for mod in builder.MODULES:
        assert f"lib/modules/{mod}.ko" in listing
    assert "init" in listing and "bin/busybox" in listing
    manifest = json.loads((image.dir / "manifest.json").read_text())
    assert manifest["packages"] == list(builder.PACKAGES)
    assert "cloud-amd64" in manifest["kernel_package"]
    init = (REPO / "sandbox/guest/init.sh").read_text()
    order = [init.index(m) for m in ("virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev "
                                     "virtio_pci virtio_blk virtio_console",)]
    assert order[0] > 0
    assert "mount -t ext4 -o ro" in init and "switch_root" in init


@pytest.mark.slow
def test_cli_entry_points_hit_the_cache(image):
    env = dict(os.environ)
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "sandbox.image"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(image.dir)
    out = subprocess.run([sys.executable, "manage.py", "sandbox_build_image"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(image.dir)
    assert time.monotonic() - t < 60


def test_prune_keeps_only_the_current_image_and_its_states(tmp_path):
    keep = builder.recipe_id()
    for d in (f"images/{keep}", "images/" + "0" * 64, f"saves/v3-{keep[:16]}-qemu-7.2",
              "saves/v3-0000000000000000-qemu-7.2", f"base/{builder.base_id()[:16]}", "base/old"):
        (tmp_path / d).mkdir(parents=True)
    removed = {p.relative_to(tmp_path).as_posix() for p in builder.prune_images(tmp_path, keep)}
    assert removed == {"images/" + "0" * 64, "saves/v3-0000000000000000-qemu-7.2", "base/old"}
    assert (tmp_path / f"images/{keep}").is_dir() and (tmp_path / f"saves/v3-{keep[:16]}-qemu-7.2").is_dir()
