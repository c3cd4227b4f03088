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
    keeps_uint8,
    load_dataset,
    load_dataset_for_model,
    native_size,
    prepare_image,
    to_display_images,
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


def test_mnist_kept_as_uint8_is_the_files_bytes_and_feeds_the_model_unchanged(fake_mnist):
    from functools import partial

    from vizlib.embedding import embedding_layers, layer_features
    from vizlib.models.lenet import LeNetLike

    raw, raw_labels = fake_mnist["train"]
    pick = [40, 3, 17, 0, 49]
    x8, y, _ = load_dataset("mnist", "train", indices=pick, keep_uint8=True)
    assert x8.dtype == torch.uint8 and x8.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(x8[:, 0].numpy(), raw[pick])
    assert y.tolist() == raw_labels[pick].tolist()

    # the model's input: an independent normalisation of the raw bytes (float64, then exact)
    meta = {"input_size": [1, 28, 28], "mean": [0.1307], "std": [0.3081]}
    fed = to_model_input(x8, "mnist", meta)
    np.testing.assert_allclose(fed[:, 0].numpy(), (raw[pick] / 255.0 - 0.1307) / 0.3081, atol=1e-6)
    by_hand = (torch.from_numpy(raw[pick]).float()[:, None] / 255.0 - 0.1307) / 0.3081
    assert torch.equal(fed, by_hand)
    torch.manual_seed(0)
    model = LeNetLike().eval()
    layers = embedding_layers(model)
    feats = layer_features(
        model, x8, layers, batch_size=2, transform=partial(to_model_input, name="mnist", meta=meta)
    )
    expected = layer_features(model, by_hand, layers, batch_size=2)
    for name in layers:
        np.testing.assert_array_equal(feats[name], expected[name], err_msg=name)

    # and as the float32 normalised images fed it before, up to float rounding
    rgb = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    x32, _, _ = load_dataset("mnist", "train", indices=pick)
    assert x32.dtype == torch.float32
    for m in (meta, rgb):
        old = to_model_input(x32, "mnist", m)
        torch.testing.assert_close(to_model_input(x8, "mnist", m), old, atol=1e-6, rtol=0)


def test_display_images_are_uint8_and_a_view_of_uint8_data(fake_mnist):
    raw = fake_mnist["test"][0]
    x8, _, _ = load_dataset("mnist", "test", indices=[2, 7], keep_uint8=True)
    shown = to_display_images(x8, "mnist")
    assert shown.dtype == np.uint8 and shown.shape == (2, 28, 28)
    assert np.shares_memory(shown, x8.numpy())  # no copy
    np.testing.assert_array_equal(shown, raw[[2, 7]])
    # float32 normalised images are rounded back to the same bytes
    x32, _, _ = load_dataset("mnist", "test", indices=[2, 7])
    np.testing.assert_array_equal(to_display_images(x32, "mnist"), raw[[2, 7]])
    digits, _, _ = load_dataset("digits", "test", input_size=(8, 8), indices=[0])
    sixteenths = _first_test_digit()[0]  # 0..16
    np.testing.assert_array_equal(
        to_display_images(digits, "digits")[0], np.round(sixteenths * 255 / 16).astype(np.uint8)
    )
    colour = torch.zeros(1, 3, 4, 5, dtype=torch.uint8)
    colour[:, 1] = 200
    shown = to_display_images(colour, "cifar10")
    assert shown.shape == (1, 4, 5, 3) and shown[0, 0, 0].tolist() == [0, 200, 0]
    with pytest.raises(ValueError, match="images must be"):
        to_display_images(torch.zeros(2, 28, 28), "mnist")


def _first_test_digit() -> np.ndarray:
    """The first test-split digit as scikit-learn stores it (8x8, values 0..16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from vizlib.data.datasets import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION

    digits = load_digits()
    _, test_idx = train_test_split(
        np.arange(len(digits.target)), test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED, stratify=digits.target,
    )  # fmt: skip
    return digits.images[test_idx[:1]]


def test_which_datasets_stay_uint8():
    assert keeps_uint8("mnist") and keeps_uint8("fashion_mnist") and keeps_uint8("cifar10")
    assert keeps_uint8("mnist", (28, 28)) and not keeps_uint8("mnist", (32, 32))
    assert not keeps_uint8("digits") and not keeps_uint8("imagefolder:/tmp")
    # resized or sixteenths: float32 normalised even when asked to keep uint8
    x, _, _ = load_dataset("digits", "test", indices=[0], keep_uint8=True)
    assert x.dtype == torch.float32


def test_mnist_is_counted_from_its_headers_and_subset_as_torchvision_reads_it(
    fake_mnist, tmp_path, monkeypatch
):
    from torchvision import datasets

    # the subset the Embeddings page takes for a seed: sorted indices into train + test
    pick = np.sort(np.random.default_rng(3).permutation(70)[:25])
    expected = {
        split: datasets.MNIST(str(tmp_path), train=split == "train").data.numpy()
        for split in ("train", "test")
    }

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("the files were decoded by torchvision")

    monkeypatch.setattr(datasets, "MNIST", Refused)
    sizes = [dataset_size("mnist", "train"), dataset_size("mnist", "test")]
    assert sizes == [50, 20]
    train, _, _ = load_dataset("mnist", "train", indices=pick[pick < 50], keep_uint8=True)
    test, _, _ = load_dataset("mnist", "test", indices=pick[pick >= 50] - 50, keep_uint8=True)
    np.testing.assert_array_equal(
        torch.cat([train, test])[:, 0].numpy(),
        np.concatenate([expected["train"], expected["test"]])[pick],
    )
    first, _, _ = load_dataset("mnist", "test", max_samples=4, keep_uint8=True)
    np.testing.assert_array_equal(first[:, 0].numpy(), expected["test"][:4])
    first[:] = 0  # the caller's own copy: the next load is unchanged
    again, _, _ = load_dataset("mnist", "test", max_samples=4, keep_uint8=True)
    np.testing.assert_array_equal(again[:, 0].numpy(), expected["test"][:4])


def test_other_mnist_files_are_left_to_torchvision_and_counted_once_per_file_state(
    tmp_path, monkeypatch
):
    from vizlib.data import datasets as module

    # torchvision reads legacy processed/*.pt files in preference to the raw ones (50 and 20)
    write_fake_mnist(tmp_path)
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir()
    for file, n in (("training.pt", 12), ("test.pt", 5)):
        data = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
        torch.save((data, torch.randint(0, 10, (n,))), processed / file)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    reads = []
    read = module._torchvision_arrays
    monkeypatch.setattr(module, "_torchvision_arrays", lambda *a: reads.append(a[2]) or read(*a))
    assert dataset_size("mnist", "train") == 12 and dataset_size("mnist", "test") == 5
    assert dataset_size("mnist", "train") == 12 and reads == ["train", "test"]  # reused
    x, _, _ = load_dataset("mnist", "test", indices=[4, 1], keep_uint8=True)
    saved = torch.load(processed / "test.pt", weights_only=True)[0]
    assert torch.equal(x[:, 0], saved[[4, 1]])
    data = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    torch.save((data, torch.randint(0, 10, (7,))), processed / "test.pt")  # the files change
    assert dataset_size("mnist", "test") == 7

    # a truncated raw file is not trusted from its header: torchvision refuses it clearly
    write_fake_mnist(tmp_path / "broken")
    labels = tmp_path / "broken" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path / "broken"))
    assert dataset_size("mnist", "train") == 50
    with pytest.raises(ValueError, match="could not be read"):
        dataset_size("mnist", "test")
    with pytest.raises(ValueError, match="could not be read"):
        load_dataset("mnist", "test", indices=[0])
