"""Worker tasks (django-tasks). The web process only enqueues them (`runtimes.actions`)."""
from __future__ import annotations

from django_tasks import task

from runtimes.build import do_build_runtime


@task(queue_name="default")
def build_runtime(runtime_id: int) -> str:
    """Build a queued runtime and activate it on success; returns its final status."""
    return str(do_build_runtime(runtime_id))
