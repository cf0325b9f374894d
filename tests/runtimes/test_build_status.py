"""A runtime build's status changes only through `runtimes.build.move`: one conditional UPDATE
from an expected status, along `Runtime.ALLOWED`, like runs and steps."""
from datetime import timedelta

import pytest
from django.utils import timezone

from engine.status import TransitionError
from runtimes import build
from runtimes.models import Runtime

pytestmark = pytest.mark.django_db

S = Runtime.Status


def test_a_build_moves_only_along_the_allowed_table():
    rows = Runtime.objects.filter(pk=Runtime.objects.create().pk)
    with pytest.raises(TransitionError):
        build.move(rows, S.READY, expect=S.QUEUED)  # a queued build is not ready before it is built
    assert build.move(rows, S.BUILDING, expect=S.QUEUED, started=timezone.now()) == 1
    assert build.move(rows, S.BUILDING, expect=S.QUEUED) == 0  # a second claim finds it taken
    assert build.move(rows, S.READY) == 1
    assert rows.get().finished is not None
    with pytest.raises(TransitionError):
        build.move(rows, S.FAILED, expect=S.READY)  # finished builds stay as they are
    assert rows.get().status == S.READY


def test_a_claimed_build_is_not_built_again(layer_env):
    rt = Runtime.objects.create(status=S.BUILDING, started=timezone.now())
    assert build.do_build_runtime(rt.pk) == S.BUILDING
    assert Runtime.objects.get(pk=rt.pk).log == ""


def test_a_build_reaped_as_lost_stays_failed_when_its_worker_comes_back(settings):
    settings.STEPWELL_RUNTIME_BUILD_TIMEOUT_S = 30
    rt = Runtime.objects.create(status=S.BUILDING, started=timezone.now() - timedelta(hours=1))
    assert build.reap_stale_builds() == 1
    assert not build._LogSink(rt.pk).finish(S.READY, image_id="late")
    rt.refresh_from_db()
    assert rt.status == S.FAILED and rt.image_id == "" and "worker lost" in rt.error
