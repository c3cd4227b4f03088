"""Figures for the attribution pages."""

__all__: list[str] = []
