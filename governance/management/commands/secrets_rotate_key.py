"""Rotate the secrets key: a new Fernet key first, every secret re-encrypted, then old keys dropped.

With the key file (var/secrets_key): the new key is written in front of the old ones (old tokens
stay readable meanwhile), every secret is re-encrypted with it, and the old keys are removed
unless --keep-old is given. With STEPWELL_SECRETS_KEY set, put the new key first in the variable
yourself (--new-key prints one), restart, and run this command to re-encrypt under it.
"""
from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError

from governance import crypto
from governance.secret_actions import rotate


class Command(BaseCommand):
    help = "Generate a new secrets key, re-encrypt every secret with it, and retire the old keys."

    def add_arguments(self, parser):
        parser.add_argument("--keep-old", action="store_true", help="keep the old keys in the key file")
        parser.add_argument("--new-key", action="store_true", help="only print a fresh Fernet key")

    def handle(self, *args, keep_old=False, new_key=False, **opts):
        if new_key:
            self.stdout.write(Fernet.generate_key().decode())
            return
        if crypto.from_env():
            count = rotate()
            self.stdout.write(f"re-encrypted {count} secret(s) under the first key of STEPWELL_SECRETS_KEY")
            return
        try:
            old = crypto.read_keys()
        except crypto.SecretsKeyError as exc:
            raise CommandError(str(exc)) from None
        new = Fernet.generate_key()
        crypto.write_keys([new, *old])
        count = rotate()
        if not keep_old:
            crypto.write_keys([new])
        self.stdout.write(f"new key in place; re-encrypted {count} secret(s)"
                          + ("; old keys kept" if keep_old else "; old keys removed"))
