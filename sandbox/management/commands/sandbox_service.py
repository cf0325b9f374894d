"""`python manage.py sandbox_service [--driver libvirt|process] [--pool-size N] [--socket PATH]`"""
from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from sandbox.contract import SandboxError


class Command(BaseCommand):
    help = ("Run the per-host sandbox service: owns one driver (and its warm pool) and serves "
            "executions on a unix socket until SIGTERM/SIGINT.")

    def add_arguments(self, parser):
        parser.add_argument("--driver", choices=("libvirt", "process"), default=None,
                            help="sandbox driver (default: SANDBOX_DRIVER)")
        parser.add_argument("--pool-size", type=int, default=None,
                            help="warm slots / concurrent executions (default: SANDBOX_POOL_SIZE)")
        parser.add_argument("--socket", default=None, help="unix socket path (default: SANDBOX_SOCKET)")

    def handle(self, *args, **opts):
        from sandbox.service import run_service

        if opts["pool_size"] is not None and not 0 <= opts["pool_size"] <= 64:
            raise CommandError("--pool-size must be between 0 and 64")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            run_service(opts["driver"], opts["pool_size"], opts["socket"])
        except (SandboxError, ValueError) as exc:
            raise CommandError(str(exc)) from None
