"""vizlib.zoo."""

__all__: list[str] = []
