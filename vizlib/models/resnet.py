"""A small residual CNN: 3x3 conv blocks with BatchNorm and ReLU, stride-2 stages, global pooling."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "SmallResNet"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut, then ReLU.

    Input (B, C_in, H, W); output (B, C_out, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # the residual must match the main path's shape to be added
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))  # (B, C_out, H', W')
        y = self.bn2(self.conv2(y))  # (B, C_out, H', W')
        return self.relu2(y + self.shortcut(x))  # (B, C_out, H', W')


class SmallResNet(nn.Module):
    """Stem conv, one residual block per stage (stride 2 between stages), global average pool, linear.

    Input (B, in_channels, H, W) with any H, W >= 8; output logits (B, num_classes).
    With the defaults a 28x28 input gives feature maps of 28, 14 and 7 pixels.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        widths: tuple[int, ...] | list[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        widths = tuple(int(w) for w in widths)
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "widths": list(widths),
        }
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages = []
        prev = widths[0]
        for i, width in enumerate(widths):
            stages.append(BasicBlock(prev, width, stride=1 if i == 0 else 2))
            prev = width
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature maps (B, widths[-1], H / 2^(stages-1), W / 2^(stages-1))."""
        return self.layers(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)  # (B, C, h, w)
        return self.fc(self.flatten(self.pool(x)))  # (B, classes)
