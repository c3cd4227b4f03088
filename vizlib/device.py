"""Which torch device vizlib computes on: CUDA when present, else CPU; ``VIZLIB_DEVICE`` overrides."""

from __future__ import annotations

import os

import torch

__all__ = ["available_devices", "default_device", "describe_device", "resolve_device"]

ENV_VAR = "VIZLIB_DEVICE"


def available_devices() -> list[str]:
    """Return the device strings this machine can compute on, best first ("cuda:0", ..., "cpu")."""
    devices = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def default_device() -> torch.device:
    """Return the device picked by ``VIZLIB_DEVICE`` if set, else CUDA when available, else CPU.

    Raises ``ValueError`` when the environment names a device this machine does not have.
    """
    wanted = os.environ.get(ENV_VAR, "").strip()
    if wanted:
        return resolve_device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a ``torch.device`` after checking it exists; ``None`` means the default.

    Raises ``ValueError`` with a readable message for an unknown or absent device
    (for example "cuda" on a machine without a GPU).
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'.") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {str(dev)!r} was asked for, but this machine has no CUDA GPU."
            )
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"Device {str(dev)!r} was asked for, but only {torch.cuda.device_count()} GPU(s) exist."
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(
                "Device 'mps' was asked for, but Apple's Metal backend is not available."
            )
    elif dev.type != "cpu":
        raise ValueError(f"Unsupported device {str(dev)!r}: use 'cpu', 'cuda' or 'cuda:N'.")
    return dev


def describe_device(device: str | torch.device | None = None) -> str:
    """Return a human-readable name: the GPU's name and memory, or "CPU (N threads)"."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"
