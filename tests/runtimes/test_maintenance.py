"""Housekeeping: old layers are pruned (recent ones kept for roll-back), lost builds are reaped."""
from __future__ import annotations

import json

import pytest
from django.utils import timezone

from runtimes import actions
from runtimes.models import Runtime
from sandbox.layers import layers_dir

pytestmark = pytest.mark.django_db


def fake_layer(cache, layer_id):
    root = layers_dir(cache) / layer_id
    (root / "site").mkdir(parents=True)
    (root / "complete").write_text(json.dumps({"lock": [], "modules": [], "size_bytes": 0}))
    return root


def test_old_layers_are_pruned_but_recent_and_active_ones_kept(layer_env, settings):
    settings.STEPWELL_RUNTIME_KEEP_LAYERS = 2
    cache = layer_env / "cache"
    roots = {}
    for i in range(1, 6):
        roots[i] = fake_layer(cache, f"layer{i}")
        Runtime.objects.create(status="ready", image_id=f"layer{i}", layer_dir=str(roots[i] / "site"), active=(i == 1))
    (layers_dir(cache) / ".build-123-abc").mkdir()  # a build in progress is never touched
    removed = actions.prune_layers()
    assert sorted(removed) == ["layer2", "layer3"]
    assert [i for i in roots if roots[i].exists()] == [1, 4, 5]
    assert (layers_dir(cache) / ".build-123-abc").exists()


def test_a_build_whose_worker_vanished_is_marked_failed(layer_env, staff_api):
    long_ago = timezone.now() - timezone.timedelta(hours=3)
    lost = Runtime.objects.create(status="building", started=long_ago, phase="installing")
    running = Runtime.objects.create(status="building", started=timezone.now(), phase="installing")
    staff_api.get("/api/runtimes/")
    lost.refresh_from_db()
    running.refresh_from_db()
    assert lost.status == "failed" and "worker lost" in lost.error
    assert running.status == "building"
