"""Creates the first admin user when the database has no superuser, and says how to log in."""
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from designer.env import write_private


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a random password if no superuser exists."

    def handle(self, *args, **options):
        User = get_user_model()
        note = settings.VAR_DIR / "initial_admin_password.txt"
        if User.objects.filter(is_superuser=True).exists():
            if note.exists():
                self.stdout.write(f"Log in at http://127.0.0.1:8000/login/ — first admin's password is in {note}")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        note.unlink(missing_ok=True)  # a stale note from an earlier database
        write_private(note, f"username: admin\npassword: {password}\n")
        bar = "=" * 64
        self.stdout.write(self.style.SUCCESS(
            f"{bar}\nCreated the first admin user.\n  URL:      http://127.0.0.1:8000/login/\n"
            f"  username: admin\n  password: {password}\n(also saved in {note})\n{bar}"))
