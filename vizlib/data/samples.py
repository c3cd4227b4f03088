"""Sample inputs (scikit-image images, digits, synthetic weather fields) and upload readers."""

__all__: list[str] = []
