"""vizlib.train."""

__all__: list[str] = []
