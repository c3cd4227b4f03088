"""vizlib.summary."""

__all__: list[str] = []
