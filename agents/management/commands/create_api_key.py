"""`manage.py create_api_key USERNAME [--name N] [--expires-days D]`: print a new key once."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents import actions


class Command(BaseCommand):
    help = "Make an API key for a user and print it (this is the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default=None, help="the key's name (default: cli-<date and time>)")
        parser.add_argument("--expires-days", type=int, default=None, help="days until it expires (default: never)")

    def handle(self, *args, username, name, expires_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        name = name or f"cli-{timezone.now():%Y%m%d-%H%M%S}"
        try:
            key, plain = actions.create(user, name, expires_days, actor="system")
        except actions.KeyInvalid as exc:
            raise CommandError(str(exc)) from None
        expiry = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
        self.stderr.write(f"API key {key.name!r} for {username}{expiry}. It is not shown again:")
        self.stdout.write(plain)
