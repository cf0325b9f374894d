"""Queue tasks (django-tasks, database backend). The worker (`manage.py run_worker`) runs them."""
from __future__ import annotations

from django_tasks import task


@task(queue_name="default")
def execute_run(run_id: int) -> str:
    """Execute one queued run (or step test) to the end."""
    from engine import executor

    return executor.execute_run(run_id)
