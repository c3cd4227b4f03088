"""Forward hooks for models shared between sessions: this thread's passes only, always removed;
and private copies of such a model, for work that must change weights or hold hooks of its own."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def forward_hooks(
    hooks: Iterable[tuple[nn.Module, Callable]], *, pre: bool = False
) -> Iterator[None]:
    """Register each (module, hook) as a forward hook (a forward pre-hook with ``pre=True``).

    The hooks fire only for forward passes run by the calling thread: the app shares one cached
    model between sessions, and another session's pass on it must not reach this one's results.
    They are removed on exit, also when the body or a hook raises. A hook's return value is
    passed on as torch defines it (None leaves the output, or the inputs, unchanged).
    """
    owner = threading.get_ident()

    def only_this_thread(hook: Callable) -> Callable:
        @functools.wraps(hook)
        def wrapped(*args):
            if threading.get_ident() == owner:
                return hook(*args)
            return None

        return wrapped

    handles = []
    try:
        for module, hook in hooks:
            register = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(register(only_this_thread(hook)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def private_copy(model: nn.Module, device: str | None = None) -> nn.Module:
    """Return a copy of a (shared) model that the caller alone uses, its parameters frozen
    (``requires_grad=False``; gradients can still flow to an input) and without the hooks other
    threads may have on the original at this moment. The training mode is the original's.

    With ``device``, parameters and buffers are copied straight there (the memo hands deepcopy
    the copies): deepcopy itself would first clone each one where it is, e.g. on a GPU that has
    just run out of memory.
    """
    memo: dict[int, object] = {}
    if device is not None:
        for p in model.parameters():
            memo[id(p)] = nn.Parameter(p.detach().to(device, copy=True), requires_grad=False)
        for b in model.buffers():
            memo[id(b)] = b.detach().to(device, copy=True)
    clone = copy.deepcopy(model, memo)
    if device is not None:
        clone = clone.to(device)  # anything the memo did not cover
    for module in clone.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        module._backward_hooks.clear()
        module._backward_pre_hooks.clear()
    return clone.requires_grad_(False)
