"""The shipped checkpoints: load, re-evaluate on the digits test split, sizes, metadata."""

from __future__ import annotations

import json

import pytest
import torch

from vizlib import zoo
from vizlib.data import load_dataset
from vizlib.train import evaluate, position_embedding_structure

SHIPPED = {"lenet_digits": 0.97, "resnet_digits": 0.97, "vit_digits": 0.93}
JSON_KEYS = {
    "architecture",
    "config",
    "dataset",
    "input_size",
    "mean",
    "std",
    "class_names",
    "test_accuracy",
    "epochs",
    "seed",
    "training_time_s",
    "device",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_reaches_its_recorded_accuracy(name):
    path = zoo.CHECKPOINT_DIR / f"{name}.safetensors"
    assert path.is_file(), f"{path} is not shipped"
    assert path.stat().st_size < 5 * 2**20
    recorded = json.loads(path.with_suffix(".json").read_text())
    assert JSON_KEYS <= recorded.keys()
    model, meta = zoo.load_model(name, device="cpu")
    assert not model.training and meta["source"] == "checkpoint" and meta["notice"] is None
    images, labels, _ = load_dataset(meta["dataset"], "test", input_size=meta["input_size"][1:])
    accuracy = evaluate(model, images, labels)
    assert accuracy == pytest.approx(recorded["test_accuracy"], abs=1 / len(labels))
    assert accuracy >= SHIPPED[name]


def test_vit_checkpoint_metadata_and_position_embedding_structure():
    model, meta = zoo.load_model("vit_digits", device="cpu")
    assert meta["family"] == "vit"
    assert (meta["patch_size"], meta["num_prefix_tokens"], meta["grid_size"]) == (4, 1, [8, 8])
    assert meta["input_size"] == [1, 32, 32]
    check = position_embedding_structure(model.pos_embed, model.grid_size, num_prefix_tokens=1)
    # neighbouring patches' position embeddings are clearly more alike than far-apart ones
    assert check["neighbour_cosine"] > check["far_cosine"] + 0.2
    assert check == pytest.approx(meta["position_embedding_check"], abs=1e-5)


def test_position_embedding_structure_known_answer():
    # embeddings that are smooth functions of the grid position score higher for neighbours
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    angles = torch.stack([rows.flatten(), cols.flatten()], 1) * 0.4  # (16, 2)
    smooth = torch.cat([angles.cos(), angles.sin()], 1)[None]  # (1, 16, 4)
    check = position_embedding_structure(smooth, (4, 4), num_prefix_tokens=0)
    assert check["neighbour_cosine"] > check["far_cosine"]
    # cos 0.4 per unit step along one axis: (1 + cos 0.4) / 2 for 4-neighbours
    expected = (1 + torch.cos(torch.tensor(0.4))) / 2
    assert check["neighbour_cosine"] == pytest.approx(float(expected), abs=1e-5)


def test_augment_identity_and_background():
    from vizlib.train import augment

    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    same = augment(x, background=-1.0, max_shift=0.0, max_degrees=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=1e-5)
    # a constant background image stays constant whatever the shift and rotation
    flat = torch.full((4, 1, 8, 8), -0.9)
    moved = augment(flat, background=-0.9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(moved, flat)


def test_train_writes_weights_and_sidecar(tmp_path):
    from safetensors.torch import load_file

    from vizlib.train import train

    meta = train("lenet", epochs=1, seed=3, out_dir=tmp_path, name="tiny", progress=False)
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert JSON_KEYS <= saved.keys() and saved["epochs"] == 1 and saved["seed"] == 3
    assert saved["test_accuracy"] == pytest.approx(meta["test_accuracy"])
    assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["training_time_s"] > 0
    state = load_file(str(tmp_path / "tiny.safetensors"))
    assert state["conv1.weight"].shape == (32, 1, 5, 5)
