import pytest
import torch

from vizlib import device as vdev


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
