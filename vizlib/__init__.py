"""vizlib: the computation behind the dashboard, usable on its own (no Streamlit in here).

Submodules load on first use (``vizlib.conv``, ``vizlib.attention`` ...), so ``import vizlib``
stays cheap. Each submodule lists its public names in ``__all__``, and every one of them is also
reachable from the top: ``vizlib.tsne`` is ``vizlib.embedding.tsne``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .device import available_devices, default_device, describe_device, resolve_device

_SUBMODULES = (
    "adversarial",
    "attention",
    "attribution",
    "calibration",
    "conv",
    "data",
    "device",
    "effective_field",
    "embedding",
    "features",
    "featureviz",
    "filters",
    "heads",
    "kernels",
    "layerstats",
    "models",
    "plots",
    "posembed",
    "receptive",
    "similarity",
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


def _submodule(name: str) -> Any:
    return importlib.import_module(f".{name}", __name__)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _submodule(name)
    if not name.startswith("_"):
        for module_name in _SUBMODULES:
            module = _submodule(module_name)
            if name in getattr(module, "__all__", ()):
                return getattr(module, name)
    raise AttributeError(f"module 'vizlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))
