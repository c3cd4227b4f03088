"""vizlib.device, and two tools for the device tests of other files: ``exact_float32`` (GPU
results comparable with the CPU's) and ``MetaAsGPU`` (device mixing caught without a GPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from vizlib import device as vdev


@contextmanager
def exact_float32() -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and CUDA matmuls inside the block.

    cuDNN convolves float32 in TF32 by default (inputs rounded to 10 mantissa bits, errors near
    1e-3), so a GPU test comparing with the CPU at float32 tolerances needs it off.
    """
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# copies between devices (Module.to's included) and indexing, which takes CPU indices on CUDA,
# may mix devices
_TRANSFERS = frozenset(
    {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.copy_, torch._has_compatible_shallow_copy_type}
    | {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
)
# reading a value on the host: a GPU sync
_HOST_READS = frozenset(
    {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__}
    | {torch.Tensor.__int__, torch.Tensor.__index__}
)


class MetaAsGPU(TorchFunctionMode):
    """The meta device standing in for a GPU on a machine without one.

    Inside, an operation whose tensor arguments live on two devices raises, as CUDA with CPU
    tensors does (a 0-dim CPU tensor is allowed, as CUDA allows it); torch's own meta kernels
    let some through (matmul, einsum). Meta tensors hold no data: a copy to the CPU gives zeros
    of the right shape and dtype, and a value read on the host (``.item()``, ``bool``,
    ``float``) reads zeros and is counted in ``host_reads`` (on a GPU each is a sync).
    ``device_ops`` names each operation that had a meta tensor among its arguments.
    """

    def __init__(self) -> None:
        super().__init__()
        self.host_reads = 0
        self.device_ops: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if any(t.is_meta for t in tensors):
            self.device_ops.append(getattr(func, "__name__", repr(func)))
        src = args[0] if args else None
        if func in (torch.Tensor.cpu, torch.Tensor.to) and src.is_meta:
            if func is torch.Tensor.cpu:
                target, dtype = torch.device("cpu"), None
            else:
                options = {k: v for k, v in kwargs.items() if k != "copy"}
                target, dtype, *_ = torch._C._nn._parse_to(*args[1:], **options)
            if target is not None and target.type == "cpu":
                return torch.zeros(src.shape, dtype=dtype or src.dtype)
        elif func in _HOST_READS and src.is_meta:
            self.host_reads += 1
            return func(torch.zeros(src.shape, dtype=src.dtype), *args[1:], **kwargs)
        elif func not in _TRANSFERS:
            devices = {str(t.device) for t in tensors if t.ndim or t.device.type != "cpu"}
            if len(devices) > 1:
                name = getattr(func, "__name__", repr(func))
                raise RuntimeError(f"{name} mixes tensors on {sorted(devices)}")
        return func(*args, **kwargs)


def allow_meta(monkeypatch, *modules) -> None:
    """Let each module's ``resolve_device`` accept "meta" (vizlib refuses it) for MetaAsGPU."""
    for module in modules:
        real = module.resolve_device

        def resolve(device=None, real=real):
            return torch.device("meta") if str(device) == "meta" else real(device)

        monkeypatch.setattr(module, "resolve_device", resolve)


def test_meta_as_gpu_catches_mixed_devices_and_host_reads():
    """The stand-in itself: what CUDA refuses is refused, what CUDA allows runs."""
    gpu = torch.ones(3, 3, device="meta")
    with MetaAsGPU() as mode:
        for mixed in (
            lambda: gpu @ torch.ones(3, 3),  # torch's meta kernel would allow it
            lambda: torch.einsum("ij,ij->i", gpu, torch.ones(3, 3)),
            lambda: gpu + torch.arange(3),
        ):
            with pytest.raises(RuntimeError, match=r"mixes tensors on \['cpu', 'meta'\]"):
                mixed()
        assert (gpu * torch.tensor(2.0)).is_meta  # a 0-dim CPU tensor is fine, as on CUDA
        back = (gpu * 2).to("cpu", torch.float64)
        assert back.dtype == torch.float64 and back.shape == (3, 3) and not back.any()
        assert gpu.cpu().device.type == "cpu" and gpu[torch.tensor([0, 2])].is_meta
        assert mode.host_reads == 0
        assert not bool(gpu.sum()) and float(gpu[0, 0]) == 0.0
        assert mode.host_reads == 2
        with pytest.raises(TypeError, match="numpy"):
            gpu.numpy()  # as CUDA: .cpu() first


def test_default_is_cuda_when_present_else_cpu(monkeypatch):
    monkeypatch.delenv(vdev.ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert vdev.default_device().type == expected


def test_env_overrides_default(monkeypatch):
    monkeypatch.setenv(vdev.ENV_VAR, "cpu")
    assert vdev.default_device() == torch.device("cpu")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without a GPU"
)
def test_absent_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        vdev.resolve_device("cuda")
    monkeypatch.setenv(vdev.ENV_VAR, "cuda:0")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        vdev.default_device()


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown device"):
        vdev.resolve_device("tpu-9000")


def test_available_devices_end_with_cpu_and_resolve():
    devices = vdev.available_devices()
    assert devices[-1] == "cpu"
    for name in devices:
        assert vdev.resolve_device(name).type in {"cpu", "cuda", "mps"}
    assert "CPU" in vdev.describe_device("cpu")


@pytest.mark.gpu
def test_gpu_is_described_by_name():
    assert torch.cuda.get_device_name(0) in vdev.describe_device("cuda:0")


def test_cpu_description_counts_threads_in_words():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert vdev.describe_device("cpu") == "CPU (1 thread)"
        torch.set_num_threads(2)
        assert vdev.describe_device("cpu") == "CPU (2 threads)"
    finally:
        torch.set_num_threads(before)
