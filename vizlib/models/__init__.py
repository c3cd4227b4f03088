"""Model definitions: one file per family."""

from .vit import ViT, ViTConfig

__all__ = ["ViT", "ViTConfig"]
