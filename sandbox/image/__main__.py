"""`python -m sandbox.image [--force] [--cache-dir DIR]`: build the sandbox guest image."""
import argparse
import sys
from pathlib import Path

from sandbox.config import SandboxConfig

from .builder import ImageBuildError, build_image, prune_images


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox.image", description=__doc__)
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--mirror", default=None, help="Debian mirror for debootstrap")
    ap.add_argument("--prune", action="store_true",
                    help="afterwards remove older images and their saved VM states")
    args = ap.parse_args(argv)
    cache = args.cache_dir or SandboxConfig.from_env().cache_dir
    try:
        img = build_image(cache, force=args.force, mirror=args.mirror)
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.prune:
        for p in prune_images(cache, img.id):
            print(f"removed {p}", file=sys.stderr)
    print(img.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
