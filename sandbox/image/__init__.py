"""Guest image builder (no Django): see builder.py."""
from .builder import GuestImage, ImageBuildError, build_image, find_image, recipe_id

__all__ = ["GuestImage", "ImageBuildError", "build_image", "find_image", "recipe_id"]
