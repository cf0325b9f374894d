"""Build the runtime of the enabled packages in this process and activate it (for set-up
scripts and tests; the web app queues builds for the worker instead)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from runtimes import actions
from runtimes.models import AllowedPackage, Runtime


class Command(BaseCommand):
    help = "Build (or reuse) the package layer of the enabled allow-list and make it active."

    def add_arguments(self, parser):
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing when an active runtime exists, its layer is on disk "
                                 "and it was built from the allow-list as it is now")

    def handle(self, *args, **opts):
        active = actions.active_runtime()
        if opts["if_missing"] and active and active.layer_dir and Path(active.layer_dir).is_dir():
            listed = [p.snapshot() for p in AllowedPackage.objects.filter(enabled=True).order_by("normalized")]
            if active.requested == listed:
                self.stdout.write(f"runtime #{active.pk} is active ({len(active.lock)} distributions)")
                return
            self.stdout.write(f"the allow-list changed since runtime #{active.pk}: building")
        runtime = Runtime.objects.create(reason="manage.py runtime_build")
        status = actions.do_build_runtime(runtime.pk)
        runtime.refresh_from_db()
        if status != Runtime.Status.READY:
            self.stderr.write(runtime.log[-4000:])
            raise CommandError(f"runtime #{runtime.pk} failed: {runtime.error}")
        self.stdout.write(f"runtime #{runtime.pk} is active: {len(runtime.lock)} distributions, "
                          f"{(runtime.size_bytes or 0) / 1e6:.0f} MB, layer {runtime.image_id}"
                          f"{' (reused)' if runtime.reused else ''}")
