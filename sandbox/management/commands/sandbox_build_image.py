"""`python manage.py sandbox_build_image [--force]`: build (or find cached) the sandbox guest image.

Thin wrapper over sandbox.image.build_image (which also runs without Django:
`python -m sandbox.image`). The image is cached under <cache_dir>/images/<recipe sha256>, so a
second run returns in about a second.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sandbox.config import SandboxConfig
from sandbox.image import ImageBuildError, build_image
from sandbox.image.builder import prune_images


class Command(BaseCommand):
    help = "Build the sandbox guest VM image (kernel, initramfs, read-only root) if not cached."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="rebuild even when cached")
        parser.add_argument("--cache-dir", type=Path, default=None,
                            help="cache directory (default: SANDBOX_CACHE_DIR, else /var/cache/stepwell "
                                 "for root, ~/.cache/stepwell for others)")
        parser.add_argument("--mirror", default=None, help="Debian mirror for debootstrap")
        parser.add_argument("--prune", action="store_true",
                            help="afterwards remove older images and their saved VM states")

    def handle(self, *args, **opts):
        cache = opts["cache_dir"] or SandboxConfig.from_env().cache_dir
        try:
            img = build_image(cache, force=opts["force"], out=self.stderr._out, mirror=opts["mirror"])
        except ImageBuildError as exc:
            raise CommandError(str(exc)) from None
        if opts["prune"]:
            for p in prune_images(cache, img.id):
                self.stderr.write(f"removed {p}")
        self.stdout.write(str(img.dir))
