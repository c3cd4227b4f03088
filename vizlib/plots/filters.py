"""Figures for the filters pages."""

__all__: list[str] = []
