"""Intermediate activations of a model, recorded with forward hooks that never outlive the call.

The model may be shared between threads (one cached model serves every Streamlit session), so
nothing here mutates it: no ``.to()``, no ``.train()``, no parameter edits; each call's hooks only
record the forward passes run by the calling thread, and are removed even when the forward raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ._hooks import forward_hooks
from .device import resolve_device

__all__ = ["activations", "layer_names", "model_device", "recording"]


def layer_names(
    model: nn.Module, kinds: type[nn.Module] | tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
) -> list[str]:
    """Return the dotted names (as in ``named_modules``) of the submodules of the given kinds, in order."""
    return [name for name, module in model.named_modules() if name and isinstance(module, kinds)]


def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's first parameter (or buffer); the CPU for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    # "cuda" means the current GPU; compare indices only when both name one.
    if a.type == "cuda":
        index_a = a.index if a.index is not None else torch.cuda.current_device()
        index_b = b.index if b.index is not None else torch.cuda.current_device()
        return index_a == index_b
    return True


def _resolve_modules(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    unknown = [name for name in layers if not name or name not in modules]
    if unknown:
        valid = [name for name in modules if name]
        raise ValueError(
            f"Unknown layer name(s) {unknown}; valid names are: {', '.join(valid) or '(none)'}."
        )
    return {name: modules[name] for name in layers}


def _first_tensor(output: object) -> torch.Tensor:
    # Blocks such as the ViT's EncoderBlock return (x, attention): the features are element 0.
    while isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"layer output is a {type(output).__name__}, not a tensor")
    return output


@contextmanager
def recording(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yield a dict that fills with each named layer's output (CPU tensor) on every forward pass.

    Only forward passes run by the calling thread are recorded, so other threads may use the
    same model at the same time. Each new forward pass overwrites the previous entries.
    Hooks are removed on exit, also when the body raises.
    """
    modules = _resolve_modules(model, layers)
    store: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            # A copy even on the CPU: an in-place ReLU after this layer would overwrite it.
            store[name] = _first_tensor(output).detach().to("cpu", copy=True)

        return hook

    with forward_hooks((module, make_hook(name)) for name, module in modules.items()):
        yield store


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def activations(
    model: nn.Module,
    images: torch.Tensor,
    layers: str | Iterable[str],
    batch_size: int = 64,
    *,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Return each named layer's output for every image, concatenated over batches, on the CPU.

    images: (N, C, H, W) in the model's input normalisation. Result: {layer: (N, ...)}, e.g.
    (N, C_out, H_out, W_out) for a conv layer; tuple outputs contribute their element 0.
    The images move to the model's device (its first parameter's); the model never moves, so a
    ``device`` other than the model's raises ``ValueError``. A GPU out-of-memory error halves the
    batch and retries. ``progress(done, total)`` is called after each batch.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("Give at least one layer name.")
    _resolve_modules(model, names)  # validate before any work
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    images = torch.as_tensor(images)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty batch (N, ...), got shape {tuple(images.shape)}."
        )
    on = model_device(model)
    if device is not None:
        wanted = resolve_device(device)
        if not _same_device(wanted, on):
            raise ValueError(
                f"The model lives on {on} but device={str(wanted)!r} was asked for; load the model "
                f"on that device (a shared model is never moved)."
            )
    dtype = next((p.dtype for p in model.parameters()), images.dtype)
    total = images.shape[0]
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    with recording(model, names) as store, torch.inference_mode():
        start = 0
        while start < total:
            stop = min(start + batch_size, total)
            store.clear()
            try:
                model(images[start:stop].to(on, dtype=dtype))
            except Exception as err:
                if not _is_oom(err) or batch_size == 1:
                    raise
                if on.type == "cuda":
                    torch.cuda.empty_cache()
                batch_size = max(1, batch_size // 2)
                continue
            missing = [name for name in names if name not in store]
            if missing:
                raise ValueError(f"Layer(s) {missing} did not run in the model's forward pass.")
            for name in names:
                collected[name].append(store[name])
            start = stop
            if progress is not None:
                progress(start, total)
    # Outside inference mode, so the concatenated results are ordinary tensors.
    return {name: torch.cat(parts) for name, parts in collected.items()}
