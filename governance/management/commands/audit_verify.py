"""`manage.py audit_verify`: recompute the audit chain; exit 1 naming the first event that fails."""
from django.core.management.base import BaseCommand, CommandError

from governance.chain import verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain (exit 0 when every event matches)."

    def handle(self, *args, **options):
        verdict = verify()
        if not verdict.ok:
            raise CommandError(f"audit chain broken after {verdict.verified} good events: {verdict.reason}")
        self.stdout.write(f"audit chain OK: {verdict.verified} events verified")
