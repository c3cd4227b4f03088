"""vizlib's one hook mechanism: the calling thread's passes only, always removed."""

import threading

import pytest
import torch
from torch import nn

from vizlib._hooks import forward_hooks


def test_hooks_see_only_the_calling_threads_passes():
    layer = nn.Linear(3, 2)
    seen = []
    started, release = threading.Event(), threading.Event()

    def other_thread():
        started.wait()
        layer(torch.full((4, 3), 9.0))  # another session's pass on the shared model
        release.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with forward_hooks([(layer, lambda mod, inp, out: seen.append(inp[0].shape[0]))]):
        started.set()
        release.wait(timeout=10)
        layer(torch.zeros(1, 3))
    worker.join()
    assert seen == [1]


def test_hooks_are_removed_when_the_body_raises():
    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError), forward_hooks([(layer, lambda *a: None)]):
        assert len(layer._forward_hooks) == 1
        raise RuntimeError("boom")
    assert not layer._forward_hooks


def test_pre_hooks_see_inputs_and_may_not_change_them_by_returning_none():
    layer = nn.Identity()
    seen = []
    with forward_hooks([(layer, lambda mod, args: seen.append(args[0].sum().item()))], pre=True):
        out = layer(torch.ones(2))
        assert len(layer._forward_pre_hooks) == 1
    assert seen == [2.0] and torch.equal(out, torch.ones(2))
    assert not layer._forward_pre_hooks
