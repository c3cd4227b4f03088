"""Figures for the vit pages."""

__all__: list[str] = []
