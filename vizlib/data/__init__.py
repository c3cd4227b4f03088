"""Data offline: sample inputs and upload readers (``samples``), datasets for the models (``datasets``)."""

from .datasets import *  # noqa: F403
from .datasets import __all__ as _datasets_all
from .samples import *  # noqa: F403
from .samples import __all__ as _samples_all

__all__ = [*_samples_all, *_datasets_all]
