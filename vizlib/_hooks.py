"""Forward hooks for models shared between sessions: this thread's passes only, always removed."""

from __future__ import annotations

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
