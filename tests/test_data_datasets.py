"""vizlib.data.datasets: the fixed digits split, normalisation, offline-only torchvision data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import write_fake_mnist
from vizlib.data import (
    available_datasets,
    dataset_normalization,
    dataset_size,
    denormalize,
    load_dataset,
    load_dataset_for_model,
    native_size,
    prepare_image,
    to_model_input,
)
from vizlib.data.datasets import DIGITS_MEAN, DIGITS_STD


def test_digits_split_is_fixed_and_stratified():
    x_train, y_train, names = load_dataset("digits")
    x_test, y_test, _ = load_dataset("digits", "test")
    assert x_train.shape == (1347, 1, 28, 28) and x_test.shape == (450, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert names == [str(i) for i in range(10)]
    # stratified: every class holds about a quarter of its samples in the test split
    counts = torch.bincount(y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    again, _, _ = load_dataset("digits", "test")
    torch.testing.assert_close(again, x_test)


def test_digits_equal_an_independent_split_of_sklearn_pixels():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, test_idx = train_test_split(
        np.arange(1797), test_size=0.25, random_state=0, stratify=digits.target
    )
    x, y, _ = load_dataset("digits", "test", input_size=8)  # native size: no resampling
    expected = (digits.images[test_idx] / 16.0 - DIGITS_MEAN) / DIGITS_STD
    torch.testing.assert_close(x[:, 0], torch.tensor(expected, dtype=torch.float32))
    assert y.tolist() == digits.target[test_idx].tolist()


def test_digits_normalisation_and_resize():
    x_train, _, _ = load_dataset("digits")
    # the frozen constants are the train split's mean and std, to 4 decimals
    assert abs(float(x_train.mean())) < 1e-3 and abs(float(x_train.std()) - 1) < 1e-3
    x32, _, _ = load_dataset("digits", "test", input_size=(32, 32))
    assert x32.shape == (450, 1, 32, 32)
    pixels = denormalize(x32, [DIGITS_MEAN], [DIGITS_STD])
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def test_missing_torchvision_dataset_is_a_clear_value_error(tmp_path, monkeypatch):
    monkeypatch.delenv("VIZLIB_DATA", raising=False)
    with pytest.raises(ValueError, match="VIZLIB_DATA"):
        load_dataset("mnist")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="not found"):
        load_dataset("cifar10", "test")
    assert "not found" in available_datasets()["fashion_mnist"]
    assert "bundled" in available_datasets()["digits"]
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", "valid")


def test_imagefolder_reads_images_in_place(tmp_path):
    for label, value in (("cats", 0), ("dogs", 255)):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((10, 12, 3), value, np.uint8)).save(
                tmp_path / label / f"{i}.png"
            )
    x, y, names = load_dataset(f"imagefolder:{tmp_path}", input_size=(16, 16))
    assert names == ["cats", "dogs"] and y.tolist() == [0, 0, 1, 1]
    assert x.shape == (4, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(x[3], ((1 - mean) / std).expand(3, 16, 16))
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")


META = {"input_size": [1, 28, 28], "mean": [0.5], "std": [0.25]}


def test_prepare_image_grey_colour_and_ranges():
    white = np.full((56, 56), 255, np.uint8)
    x = prepare_image(white, META)
    assert x.shape == (1, 1, 28, 28)
    torch.testing.assert_close(x, torch.full((1, 1, 28, 28), 2.0))  # (1 - 0.5) / 0.25
    rgb = np.zeros((20, 30, 3), np.float32)
    rgb[..., 1] = 1.0  # pure green: luma 0.587
    x = prepare_image(rgb, META)
    torch.testing.assert_close(x, torch.full((1, 1, 28, 28), (0.587 - 0.5) / 0.25))
    x3 = prepare_image(white, {"input_size": [3, 32, 32], "mean": [0, 0, 0], "std": [1, 1, 1]})
    assert x3.shape == (1, 3, 32, 32) and float(x3.min()) == pytest.approx(1.0)
    field = np.linspace(-5, 15, 28 * 28).reshape(28, 28)  # float outside [0, 1]: min-max scaled
    x = prepare_image(field, {"input_size": [1, 28, 28], "mean": [0.0], "std": [1.0]})
    assert float(x.min()) == pytest.approx(0.0) and float(x.max()) == pytest.approx(1.0)


def test_prepare_image_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        prepare_image(np.full((8, 8), np.nan), META)
    with pytest.raises(ValueError, match="shape"):
        prepare_image(np.zeros((2, 8, 8, 3)), META)
    with pytest.raises(ValueError, match="shape"):
        prepare_image(np.zeros((8, 8, 5)), META)


def test_dataset_for_an_rgb_imagenet_model_matches_prepare_image():
    meta = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    images, labels, _ = load_dataset_for_model("digits", meta, "test")
    own, own_labels, _ = load_dataset("digits", "test", input_size=(32, 32))
    assert images.shape == (len(own), 3, 32, 32)
    assert torch.equal(labels, own_labels)
    pixels = denormalize(own, *dataset_normalization("digits"))  # (N, 1, 32, 32) in [0, 1]
    for i in (0, 7, 200):
        expected = prepare_image(pixels[i, 0].numpy(), meta)[0]  # grey -> RGB, ImageNet stats
        torch.testing.assert_close(images[i], expected, atol=1e-5, rtol=1e-5)


def test_dataset_for_its_own_model_is_unchanged():
    mean, std = dataset_normalization("digits")
    meta = {"input_size": [1, 28, 28], "mean": mean, "std": std}
    images, _, _ = load_dataset_for_model("digits", meta, "train")
    torch.testing.assert_close(images, load_dataset("digits", "train")[0], atol=1e-5, rtol=0)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A small MNIST on disk in torchvision's layout (random pixels), under VIZLIB_DATA."""
    arrays = write_fake_mnist(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    return arrays


def test_an_mnist_on_disk_is_found_counted_and_subset(fake_mnist):
    assert available_datasets()["mnist"].startswith("on disk")
    assert dataset_size("mnist", "train") == 50 and dataset_size("mnist", "test") == 20
    assert native_size("mnist") == (28, 28) and native_size("digits") == (8, 8)
    images, labels = fake_mnist["train"]
    pick = [40, 3, 17]
    x, y, names = load_dataset("mnist", "train", indices=pick)
    assert names == [str(i) for i in range(10)]
    assert y.tolist() == labels[pick].tolist()
    expected = (images[pick] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(x[:, 0].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="indices"):
        load_dataset("mnist", "test", indices=[20])
    with pytest.raises(ValueError, match="not both"):
        load_dataset("mnist", "test", indices=[1], max_samples=5)


def test_a_subset_is_taken_before_resizing(fake_mnist):
    meta = {
        "input_size": [3, 224, 224],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    x, y, _ = load_dataset_for_model("mnist", meta, "test", indices=[5, 6])
    assert x.shape == (2, 3, 224, 224)
    whole, whole_y, _ = load_dataset_for_model("mnist", meta, "test", max_samples=7)
    torch.testing.assert_close(x, whole[5:7])
    assert torch.equal(y, whole_y[5:7])


def test_to_model_input_batch_by_batch_matches_loading_at_the_model_size():
    # the Embeddings page keeps a subset at the dataset's own size and prepares each batch
    meta = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    own, labels, _ = load_dataset(
        "digits", "test", input_size=native_size("digits"), indices=[0, 9]
    )
    assert own.shape == (2, 1, 8, 8)
    direct, direct_labels, _ = load_dataset_for_model("digits", meta, "test", indices=[0, 9])
    torch.testing.assert_close(to_model_input(own, "digits", meta), direct, atol=1e-5, rtol=1e-5)
    assert torch.equal(labels, direct_labels)
    assert dataset_size("digits", "train") + dataset_size("digits", "test") == 1797


def test_image_folder_subset_reads_only_the_chosen_files(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "b" / "2.png").write_bytes(b"not a png")  # a broken file that is never chosen
    name = f"imagefolder:{tmp_path}"
    assert dataset_size(name) == 6 and native_size(name) is None
    x, y, _ = load_dataset(name, input_size=(6, 6), indices=[4, 0])
    assert y.tolist() == [1, 0] and x.shape == (2, 3, 6, 6)
    with pytest.raises(ValueError, match="Could not read the image .*2.png"):
        load_dataset(name, input_size=(6, 6), indices=[5])
