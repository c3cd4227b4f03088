"""vizlib.filters."""

__all__: list[str] = []
