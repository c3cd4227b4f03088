"""Model definitions: one file per family."""

from .lenet import LeNetLike
from .resnet import SmallResNet
from .vit import ViT, ViTConfig

__all__ = ["LeNetLike", "SmallResNet", "ViT", "ViTConfig"]
