"""Figures for the models pages."""

__all__: list[str] = []
