"""vizlib.zoo: offline torchvision models, safe uploads, clear messages for bad weights."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch
from safetensors.torch import save as save_safetensors

from vizlib import zoo

META_KEYS = {
    "name",
    "architecture",
    "family",
    "config",
    "dataset",
    "input_size",
    "mean",
    "std",
    "class_names",
    "test_accuracy",
    "pretrained",
    "notice",
    "source",
}


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_list_models_names_checkpoints_and_torchvision():
    names = zoo.list_models()
    for name in ("alexnet", "vgg16", "resnet18", "vit_b_16"):
        assert name in names
    assert set(zoo.checkpoint_names()) <= set(names)


def test_missing_torchvision_weights_give_a_notice_not_an_error(empty_torch_home):
    model, meta = zoo.load_model("resnet18", device="cpu")
    assert META_KEYS <= meta.keys()
    assert meta["pretrained"] is False and meta["source"] == "torchvision"
    assert "not available offline" in meta["notice"] and str(empty_torch_home) in meta["notice"]
    assert len(meta["class_names"]) == 1000 and meta["class_names"][0] == "tench"
    assert not model.training
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    # seeded random init: the same weights every time, and a fresh object per call
    again, _ = zoo.load_model("resnet18", device="cpu")
    assert again is not model
    torch.testing.assert_close(again.fc.weight, model.fc.weight)


def test_cached_torchvision_weights_are_used(empty_torch_home):
    from torchvision.models import resnet18

    torch.manual_seed(123)
    weights = resnet18().state_dict()
    path = zoo.torchvision_weights_path("resnet18")
    assert str(path).startswith(str(empty_torch_home))
    path.parent.mkdir(parents=True)
    torch.save(weights, path)
    model, meta = zoo.load_model("resnet18")
    assert meta["pretrained"] is True and meta["notice"] is None
    torch.testing.assert_close(model.fc.weight.cpu(), weights["fc.weight"])


def test_vit_b_16_metadata(empty_torch_home):
    _, meta = zoo.load_model("vit_b_16", device="cpu")
    assert meta["family"] == "vit"
    assert (meta["patch_size"], meta["num_prefix_tokens"], meta["grid_size"]) == (16, 1, [14, 14])
    assert meta["input_size"] == [3, 224, 224]
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]


def test_unknown_model_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown model"):
        zoo.load_model("nope")


class _Evil:
    """Unpickling this would create a file and call os.system."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        _pt_bytes({"conv1.weight": _Evil(str(marker))}),  # torch.save zip format
        pickle.dumps({"conv1.weight": _Evil(str(marker))}),  # a bare pickle
        _pt_bytes(_Evil(str(marker))),
    ]
    for payload in payloads:
        with pytest.raises(ValueError, match="Refused"):
            zoo.load_uploaded(payload, "resnet18")
        assert not marker.exists()
    # the same object unpickled naively would have run the command: the test can fail
    pickle.loads(payloads[1])
    assert marker.exists()


@pytest.fixture
def lenet_state():
    from vizlib.models import LeNetLike

    torch.manual_seed(0)
    return LeNetLike().state_dict()


@pytest.fixture
def lenet_arch():
    if "lenet_digits" not in zoo.checkpoint_names():
        pytest.skip("lenet_digits checkpoint not shipped yet")
    return "lenet_digits"


def test_upload_round_trip_safetensors_and_pt(lenet_state, lenet_arch):
    for data in (save_safetensors(lenet_state), _pt_bytes(lenet_state)):
        model, meta = zoo.load_uploaded(data, lenet_arch)
        assert META_KEYS <= meta.keys() and meta["source"] == "upload"
        torch.testing.assert_close(model.fc2.weight, lenet_state["fc2.weight"])
        assert not model.training
    assert meta["test_accuracy"] < 0.5  # untrained weights: about chance on 10 digits


def test_an_upload_of_the_shipped_weights_scores_the_recorded_test_accuracy(lenet_arch):
    shipped, recorded = zoo.load_model(lenet_arch)
    upload = save_safetensors({k: v.contiguous() for k, v in shipped.state_dict().items()})
    _, meta = zoo.load_uploaded(upload, lenet_arch)
    assert meta["test_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=1e-9)
    assert meta["test_accuracy"] > 0.9


def test_upload_lists_missing_unexpected_and_misshaped_keys(lenet_state, lenet_arch):
    state = dict(lenet_state)
    del state["fc2.bias"]
    state["conv1.weight"] = torch.zeros(8, 1, 5, 5)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        zoo.load_uploaded(_pt_bytes(state), lenet_arch)
    message = str(err.value)
    assert "missing keys (1): fc2.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "conv1.weight (file (8, 1, 5, 5), model (32, 1, 5, 5))" in message


def test_upload_refuses_whole_numbers_for_float_weights_and_takes_half_precision(
    lenet_state, lenet_arch
):
    """load_state_dict would cast int64 weights to float32 silently (a model of rounded
    weights, near chance); half precision is still decimals and loads as float32."""
    state = dict(lenet_state)
    state["fc1.weight"] = (state["fc1.weight"] * 100).round().to(torch.int64)
    state["fc2.bias"] = state["fc2.bias"].to(torch.int8)
    with pytest.raises(ValueError) as err:
        zoo.load_uploaded(save_safetensors(state), lenet_arch)
    assert "whole numbers where weights are decimals: fc1.weight (int64), fc2.bias (int8)" in str(
        err.value
    )
    half = {k: v.half() if v.is_floating_point() else v for k, v in lenet_state.items()}
    model, _ = zoo.load_uploaded(save_safetensors(half), lenet_arch)
    assert model.fc1.weight.dtype == torch.float32
    torch.testing.assert_close(model.fc1.weight, half["fc1.weight"].float())


def test_upload_rejects_nan_empty_corrupt_and_huge(lenet_state, lenet_arch, monkeypatch):
    state = dict(lenet_state)
    state["fc1.weight"] = torch.full_like(state["fc1.weight"], float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        zoo.load_uploaded(save_safetensors(state), lenet_arch)
    with pytest.raises(ValueError, match="empty"):
        zoo.load_uploaded(b"", lenet_arch)
    with pytest.raises(ValueError):
        zoo.load_uploaded(b"\x00" * 100, lenet_arch)
    with pytest.raises(ValueError, match="safetensors"):
        zoo.load_uploaded(save_safetensors(lenet_state)[:200], lenet_arch)
    with pytest.raises(ValueError, match="Unknown architecture"):
        zoo.load_uploaded(save_safetensors(lenet_state), "lenet9000")
    monkeypatch.setattr(zoo, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ValueError, match="limit"):
        zoo.load_uploaded(save_safetensors(lenet_state), lenet_arch)


def test_upload_refusals_say_why_in_plain_words(lenet_state, lenet_arch):
    from vizlib.models import LeNetLike

    whole = io.BytesIO()
    torch.save(LeNetLike(), whole)  # a whole pickled module, not a state_dict
    cases = {
        whole.getvalue(): "pickled Python object (vizlib.models.lenet.LeNetLike)",
        b"not a checkpoint at all" * 10: "neither a safetensors file nor a PyTorch checkpoint",
        _pt_bytes(lenet_state)[:5000]: "damaged or truncated",
    }
    for data, reason in cases.items():
        with pytest.raises(ValueError) as err:
            zoo.load_uploaded(data, lenet_arch)
        message = str(err.value)
        assert reason in message and "torch.save(model.state_dict(), path)" in message
        # never torch's advice to load the file unsafely
        assert "weights_only" not in message and "add_safe_globals" not in message


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_upload_from_a_wrapped_model_loses_the_prefix(lenet_state, lenet_arch, prefix):
    wrapped = {prefix + k: v for k, v in lenet_state.items()}  # nn.DataParallel / torch.compile
    model, meta = zoo.load_uploaded(_pt_bytes(wrapped), lenet_arch)
    torch.testing.assert_close(model.fc2.weight, lenet_state["fc2.weight"])
    assert repr(prefix) in meta["notice"]
    _, plain = zoo.load_uploaded(_pt_bytes(lenet_state), lenet_arch)
    assert plain["notice"] is None
    partly = dict(wrapped)
    partly["fc2.bias"] = partly.pop(prefix + "fc2.bias")  # not every key: nothing is renamed
    with pytest.raises(ValueError, match="missing keys"):
        zoo.load_uploaded(_pt_bytes(partly), lenet_arch)


def test_corrupt_cached_torchvision_weights_give_a_notice(empty_torch_home):
    path = zoo.torchvision_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    _, meta = zoo.load_model("resnet18", device="cpu")
    assert meta["pretrained"] is False and "could not be read" in meta["notice"]


def test_list_models_by_family_matches_loaded_meta():
    vits = zoo.list_models(family="vit")
    cnns = zoo.list_models(family="cnn")
    assert sorted(vits + cnns) == sorted(zoo.list_models())
    assert "vit_digits" in vits and "vit_b_16" in vits
    assert {"lenet_digits", "resnet_digits", "alexnet"} <= set(cnns)
    for name in zoo.checkpoint_names():
        assert zoo.load_model(name)[1]["family"] == zoo.model_family(name)
    with pytest.raises(ValueError, match="family"):
        zoo.list_models(family="rnn")
