"""Worker tasks (django-tasks). The web process only enqueues them."""
from __future__ import annotations

from django_tasks import task


@task(queue_name="default")
def build_runtime(runtime_id: int) -> str:
    """Build a queued runtime and activate it on success; returns its final status."""
    from runtimes.actions import do_build_runtime

    return str(do_build_runtime(runtime_id))
