"""vizlib.posembed."""

__all__: list[str] = []
