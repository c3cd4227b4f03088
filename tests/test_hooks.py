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


def test_a_private_copy_keeps_the_mode_and_drops_every_hook():
    from vizlib._hooks import private_copy

    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    handles = [
        model[0].register_forward_hook(lambda *a: None),
        model[0].register_forward_pre_hook(lambda *a: None),
        model[2].register_full_backward_hook(lambda *a: None),
        model[2].register_full_backward_pre_hook(lambda *a: None),
    ]
    try:
        clone = private_copy(model)
    finally:
        for handle in handles:
            handle.remove()
    assert clone.training and clone[1].training  # the original's mode
    assert not any(p.requires_grad for p in clone.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the original untouched
    for m in clone.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
        assert not m._backward_pre_hooks
    for a, b in zip(clone.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
