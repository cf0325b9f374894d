"""The task worker: django-tasks' database worker, N claim loops in one process, woken at once
by a datagram on STEPWELL_WAKE_SOCKET (sent after each enqueue commits; from other hosts, a
PostgreSQL NOTIFY relayed to it by engine.wake.HostListener) instead of sleeping the whole poll
interval; plus the scheduler (schedule triggers) and the lease reaper (engine/resume.py).

    python manage.py run_worker [--concurrency N] [--interval S] [--no-scheduler]
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.db.utils import OperationalError
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from engine.wake import HostListener

log = logging.getLogger("engine.worker")


class Waker:
    """The wake socket. Idle claim loops block in recv() on it, so the kernel hands each
    datagram to exactly one of them: no relay thread, no thundering herd."""

    def __init__(self, path: str, interval: float):
        self.path = path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(max(interval, 0.01))
        os.chmod(path, 0o660)

    def poke(self):
        """Let one idle claim loop (of this process) look for work."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.sendto(b"w", self.path)
        except OSError:
            pass
        finally:
            s.close()

    def wait(self) -> None:
        """Until a datagram arrives or the poll interval passes."""
        try:
            self.sock.recv(64)
        except (socket.timeout, OSError):
            pass

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class WakeableWorker(Worker):
    """django_tasks_db's Worker whose idle sleep ends as soon as the Waker is poked."""

    def __init__(self, waker: Waker, stop: threading.Event, **kwargs):
        super().__init__(**kwargs)
        self.waker, self.stop = waker, stop

    def run(self) -> None:  # same claim logic as Worker.run, different idle wait
        # The connection stays open between tasks (reconnecting costs more than the work of a
        # short run); it is dropped after a database error and reopened on the next query.
        while not self.stop.is_set():
            tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
            if not self.process_all_queues:
                tasks = tasks.filter(queue_name__in=self.queue_names)
            task_result = None
            try:
                with exclusive_transaction(tasks.db):
                    task_result = tasks.get_locked()
                    if task_result is not None:
                        task_result.claim(self.worker_id)
            except OperationalError as e:
                connection.close()
                if not is_locked_database_exception(e):
                    raise
                task_result = None
            if task_result is not None:
                self.waker.poke()  # there may be more: let an idle sibling look
                try:
                    self.run_task(task_result)
                finally:
                    if connection.connection is not None and not connection.is_usable():
                        connection.close()
                continue
            self.waker.wait()
        connection.close()


def default_concurrency() -> int:
    if settings.STEPWELL_WORKER_CONCURRENCY:
        return settings.STEPWELL_WORKER_CONCURRENCY
    try:
        from sandbox.client import SandboxClient

        size = int(SandboxClient().status(timeout=1.0).get("size") or 0)
        if size:
            return size
    except Exception:
        pass
    from sandbox.config import SandboxConfig

    return max(SandboxConfig.from_env().pool_size, 2)


class Command(BaseCommand):
    help = "Run queued workflow runs (django-tasks database backend), schedules and the lease reaper."

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Runs executed at once (default: the sandbox pool size).")
        parser.add_argument("--interval", type=float, default=None,
                            help="Seconds between polls when not woken (default STEPWELL_WORKER_INTERVAL_MS).")
        parser.add_argument("--no-scheduler", action="store_true", help="Do not start schedule triggers.")
        parser.add_argument("--wake-socket", default=None)

    def handle(self, *args, **opts):
        from engine.actions import do_start_due_schedules
        from engine.executor import reap_lost_runs

        concurrency = opts["concurrency"] or default_concurrency()
        interval = opts["interval"] if opts["interval"] is not None else settings.STEPWELL_WORKER_INTERVAL
        waker = Waker(opts["wake_socket"] or settings.STEPWELL_WAKE_SOCKET, interval)
        stop = threading.Event()

        def on_signal(signum, frame):
            log.warning("worker: %s, stopping after the runs in progress", signal.strsignal(signum))
            stop.set()
            for _ in range(concurrency):
                waker.poke()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        HostListener(waker.poke, stop).start()   # enqueues on other hosts (PostgreSQL NOTIFY)
        base = f"{socket.gethostname()}-{os.getpid()}"
        threads = []
        for i in range(concurrency):
            w = WakeableWorker(waker, stop, queue_names=["default"], interval=interval, batch=False,
                               backend_name="default", startup_delay=False, max_tasks=None,
                               worker_id=f"{base}-{i}"[:64], excluded_queue_names=[])
            t = threading.Thread(target=w.run, name=f"claim-{i}", daemon=True)
            t.start()
            threads.append(t)
        self.stdout.write(f"worker {base}: {concurrency} claim loops, poll {interval:g} s, "
                          f"wake socket {waker.path}", ending="\n")
        self.stdout.flush()
        sched_every = settings.STEPWELL_SCHEDULER_INTERVAL
        next_pass = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + sched_every
                    try:
                        reaped = reap_lost_runs()
                        if reaped:
                            log.warning("runs %s: their worker stopped renewing the lease (resumed or failed)", reaped)
                        if not opts["no_scheduler"]:
                            do_start_due_schedules()
                        from governance.chain import prune_if_due   # audit retention, at most hourly

                        prune_if_due()
                    except Exception:
                        log.exception("scheduler pass failed")
                    finally:
                        close_old_connections()
                stop.wait(min(0.5, sched_every))
        finally:
            for t in threads:
                t.join(timeout=60)
            waker.close()
