"""vizlib.attribution."""

__all__: list[str] = []
