"""vizlib: the computation behind the dashboard, usable on its own (no Streamlit in here).

Submodules load on first use (``vizlib.conv``, ``vizlib.attention`` ...), so ``import vizlib``
stays cheap; the public names of each are listed in its ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .device import available_devices, default_device, describe_device, resolve_device

_SUBMODULES = (
    "attention",
    "attribution",
    "conv",
    "data",
    "device",
    "embedding",
    "features",
    "filters",
    "kernels",
    "models",
    "plots",
    "posembed",
    "summary",
    "train",
    "zoo",
)

__all__ = [
    *_SUBMODULES,
    "available_devices",
    "default_device",
    "describe_device",
    "resolve_device",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vizlib' has no attribute {name!r}")
