"""vizlib.conv."""

__all__: list[str] = []
