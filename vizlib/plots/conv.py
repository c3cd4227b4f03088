"""Figures for the conv pages."""

__all__: list[str] = []
