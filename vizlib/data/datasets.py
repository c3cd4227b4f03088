"""Datasets prepared as the models expect: bundled digits, and torchvision datasets already on disk."""

__all__: list[str] = []
