"""`manage.py audit_prune`: apply STEPWELL_AUDIT_RETENTION_DAYS now (the worker also does it)."""
from django.core.management.base import BaseCommand

from governance.chain import prune


class Command(BaseCommand):
    help = "Delete audit events older than the retention, leaving a checkpoint event."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="retention in days (default: the setting)")

    def handle(self, *args, **options):
        deleted = prune(options["days"])
        self.stdout.write(f"pruned {deleted} audit events")
