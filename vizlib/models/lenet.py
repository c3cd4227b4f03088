"""The classical LeNet-like CNN for 1x28x28 digits (105,506 parameters, 1,333,200 multiply-adds)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LeNetLike"]


class LeNetLike(nn.Module):
    """Conv(1,32,5) -> max-pool 3 -> ReLU -> Conv(32,64,5) -> max-pool 2 -> ReLU -> 256 -> 200 -> 10.

    Input (B, 1, 28, 28); output logits (B, num_classes).
    Shapes: 28 -conv5-> 24 -pool3-> 8 -conv5-> 4 -pool2-> 2, so the flattened size is 64 * 2 * 2 = 256.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5)
        self.pool1 = nn.MaxPool2d(3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(256, 200)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))  # (B, 32, 8, 8)
        x = self.relu2(self.pool2(self.conv2(x)))  # (B, 64, 2, 2)
        x = self.flatten(x)  # (B, 256)
        return self.fc2(self.relu3(self.fc1(x)))  # (B, classes)
