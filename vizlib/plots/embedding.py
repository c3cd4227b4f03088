"""Figures for the embedding pages."""

__all__: list[str] = []
