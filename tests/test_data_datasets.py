"""vizlib.data.datasets: the fixed digits split, normalisation, offline-only torchvision data."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct

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


@pytest.mark.parametrize(
    "image, size",
    [
        (np.zeros((1, 1), np.uint8), "1×1"),
        (np.zeros((5, 1, 3), np.float32), "1×5"),  # 1 pixel wide, 5 high: width first
        (np.zeros((1, 7, 4), np.uint8), "7×1"),
    ],
)
def test_prepare_image_refuses_images_under_2x2_in_words(image, size):
    """Uploads on Filters, Attributions and the ViT pages show this message as it is."""
    with pytest.raises(ValueError) as err:
        prepare_image(image, META)
    assert str(err.value) == f"The image is {size} pixels; at least 2×2 are needed."


def test_prepare_image_takes_the_smallest_accepted_image():
    x = prepare_image(np.array([[0, 255], [255, 0]], np.uint8), META)  # 2×2: the minimum
    assert x.shape == (1, 1, 28, 28) and float(x.min()) < float(x.max())


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


def test_a_folder_read_for_a_page_skips_the_unreadable_files_and_names_them(tmp_path):
    """A truncated PNG and a text file named .jpg among good images: load_folder_for_model
    gives the good ones exactly as load_dataset_for_model does, their indices, and the two bad
    files with PIL's reasons; a folder of nothing but bad files is a clear error."""
    from vizlib.data import load_folder_for_model

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            pixels = np.full((6, 6), 40 * i + 5, np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    whole = (tmp_path / "a" / "1.png").read_bytes()
    (tmp_path / "a" / "1.png").write_bytes(whole[: len(whole) // 2])  # truncated
    (tmp_path / "b" / "0.png").write_bytes(b"not a png")
    name = f"imagefolder:{tmp_path}"
    meta = {"input_size": [1, 8, 8], "mean": [0.5], "std": [0.25]}
    read = load_folder_for_model(name, meta, indices=[5, 1, 0, 3])
    assert read.indices == [5, 0]  # torchvision's order: a/0 a/1 a/2 b/0 b/1 b/2
    assert read.labels.tolist() == [1, 0] and read.classes == ["a", "b"]
    strict, strict_labels, _ = load_dataset_for_model(name, meta, indices=[5, 0])
    torch.testing.assert_close(read.images, strict)
    assert torch.equal(read.labels, strict_labels)
    assert [path for path, _ in read.unreadable] == [
        str(tmp_path / "a" / "1.png"),
        str(tmp_path / "b" / "0.png"),
    ]
    assert all(why for _, why in read.unreadable)
    every = load_folder_for_model(name, meta)
    assert every.indices == [0, 2, 4, 5] and len(every.images) == 4
    with pytest.raises(ValueError, match=r"None of the 2 images .* could be decoded"):
        load_folder_for_model(name, meta, indices=[1, 3])


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


# ----------------------------------------------------------------------------- image folders
FRUIT = ("apples", "bananas", "cherries")


def write_image_folder(folder, n_per_class: int = 3) -> dict[str, list]:
    """Write a small ImageFolder tree under ``folder``: one sub-folder per class of ``FRUIT``,
    ``n_per_class`` images each of varied sizes and formats (RGB PNG, JPEG, an RGBA PNG, a
    greyscale PNG one folder deeper), plus a text file torchvision skips; return
    {class: [file paths in torchvision's order]}."""
    from pathlib import Path

    folder = Path(folder)
    rng = np.random.default_rng(0)
    colours = {"apples": (200, 30, 30), "bananas": (230, 210, 40), "cherries": (90, 0, 40)}
    files: dict[str, list] = {}
    for k, name in enumerate(FRUIT):
        (folder / name).mkdir(parents=True)
        (folder / name / "README.txt").write_text("not an image")
        for i in range(n_per_class):
            h, w = 12 + 5 * i + k, 30 - 3 * i  # varied sizes
            base = np.clip(
                np.array(colours[name]) + rng.integers(-20, 21, (h, w, 3)), 0, 255
            ).astype(np.uint8)
            if name == "bananas" and i == 0:  # transparent on the left half
                alpha = np.full((h, w, 1), 255, np.uint8)
                alpha[:, : w // 2] = 0
                path = folder / name / f"{i:02d}.png"
                Image.fromarray(np.concatenate([base, alpha], axis=2), "RGBA").save(path)
            elif name == "cherries" and i == 0:  # grey, one folder deeper
                (folder / name / "deep").mkdir()
                path = folder / name / "deep" / "grey.png"
                Image.fromarray(base.mean(axis=2).astype(np.uint8), "L").save(path)
            elif i % 2:
                path = folder / name / f"{i:02d}.jpg"
                Image.fromarray(base).save(path, quality=95)
            else:
                path = folder / name / f"{i:02d}.png"
                Image.fromarray(base).save(path)
            files.setdefault(name, []).append(str(path))
    # torchvision's order: walks sorted by folder, files sorted by name within each
    return {
        name: sorted(paths, key=lambda p: (str(Path(p).parent), p)) for name, paths in files.items()
    }


def pixels_by_hand(path, size: tuple[int, int], *, grey: bool = False) -> torch.Tensor:
    """Return an image file as a page should feed it, computed without vizlib: PIL's pixels
    (transparency laid on white) in [0, 1], resized by torch (bilinear, antialiased) to ``size``
    = (H, W): (3, H, W), or with ``grey`` the ITU-R 601 luma (1, H, W)."""
    image = Image.open(path)
    rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0  # (h, w, 4)
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    t = torch.nn.functional.interpolate(
        torch.from_numpy(rgb).permute(2, 0, 1)[None], size=size, mode="bilinear",
        antialias=True, align_corners=False,
    )[0]  # fmt: skip
    if grey:
        return (t * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    return t


def test_image_extensions_are_torchvisions():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from vizlib.data import IMAGE_EXTENSIONS

    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS


def test_image_folders_under_the_data_root_are_listed_with_their_classes(tmp_path, monkeypatch):
    from vizlib.data import find_image_folders

    write_image_folder(tmp_path / "fruit")
    write_fake_mnist(tmp_path, n_train=5, n_test=5)  # MNIST/raw: another data set, not classes
    (tmp_path / "notes" / "week1").mkdir(parents=True)  # sub-folders without images: not listed
    (tmp_path / "notes" / "week1" / "slides.txt").write_text("x")
    half = tmp_path / "half"  # one class with images, one without: listed as not usable
    (half / "full").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(half / "full" / "a.png")
    (half / "empty").mkdir()
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))

    listed = available_datasets()
    fruit = f"imagefolder:{tmp_path / 'fruit'}"
    assert listed[fruit] == f"on disk at {tmp_path / 'fruit'}: 3 classes"
    assert listed[f"imagefolder:{half}"].startswith("not usable")
    assert "'empty'" in listed[f"imagefolder:{half}"]
    assert not any("notes" in name or "MNIST" in name for name in listed)
    assert listed["mnist"].startswith("on disk")
    assert "imagefolder:<path>" in listed  # any other folder, by its path
    found = find_image_folders()
    assert [f.name for f in found] == [fruit] and found[0].classes == FRUIT
    # the data root itself is no image folder while it holds other data sets
    assert find_image_folders(tmp_path / "fruit")[0].path == tmp_path / "fruit"
    monkeypatch.delenv("VIZLIB_DATA")
    assert not any(name.startswith("imagefolder:/") for name in available_datasets())


def test_listing_opens_no_image(tmp_path, monkeypatch):
    """Listing reads directory entries only: with PIL unable to open anything it still works."""
    import PIL.Image

    from vizlib.data import find_image_folders

    write_image_folder(tmp_path / "fruit")

    def refuse(*args, **kwargs):
        raise AssertionError("an image was opened to list the folders")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    assert [f.classes for f in find_image_folders(tmp_path)] == [FRUIT]


def test_image_folder_loads_as_torchvision_lists_it(tmp_path):
    from PIL import ImageOps
    from torchvision.datasets import ImageFolder

    files = write_image_folder(tmp_path)
    name = f"imagefolder:{tmp_path}"
    reference = ImageFolder(str(tmp_path))  # independent: torchvision's own listing
    assert dataset_size(name) == len(reference) == 9  # the README.txt files are skipped
    x, y, classes = load_dataset(name, input_size=(20, 24))
    assert classes == list(FRUIT) == reference.classes
    assert y.tolist() == reference.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [p for p, _ in reference.samples] == [p for c in FRUIT for p in files[c]]
    assert x.shape == (9, 3, 20, 24) and x.dtype == torch.float32
    pixels = denormalize(x, *dataset_normalization(name))  # (9, 3, 20, 24) in [0, 1]

    def expected(path: str) -> torch.Tensor:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), np.float32)
        t = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None]
        return torch.nn.functional.interpolate(
            t, size=(20, 24), mode="bilinear", antialias=True, align_corners=False
        )[0]

    torch.testing.assert_close(pixels[0], expected(files["apples"][0]), atol=1e-5, rtol=0)
    # the grey PNG (last: its sub-folder is walked after the class folder's own files): three
    # equal channels, its own grey values
    assert files["cherries"][-1].endswith("deep/grey.png")
    grey = pixels[8]
    torch.testing.assert_close(grey[0], grey[1])
    torch.testing.assert_close(grey[0], grey[2])
    torch.testing.assert_close(grey, expected(files["cherries"][-1]), atol=1e-5, rtol=0)
    # the RGBA PNG: its transparent left half is white, the opaque right half its colours
    rgba = np.asarray(Image.open(files["bananas"][0]), np.float32) / 255.0  # (h, w, 4)
    on_white = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    t = torch.from_numpy(on_white).permute(2, 0, 1)[None]
    want = torch.nn.functional.interpolate(
        t, size=(20, 24), mode="bilinear", antialias=True, align_corners=False
    )[0]
    torch.testing.assert_close(pixels[3], want, atol=1e-5, rtol=0)
    assert float(pixels[3, :, :, :10].min()) > 0.99  # white, not the hidden colours
    # a subset reads those files only, in the order asked
    xs, ys, _ = load_dataset(name, input_size=(20, 24), indices=[8, 3])
    assert ys.tolist() == [2, 1]
    torch.testing.assert_close(xs, x[[8, 3]])


def test_image_folder_jpeg_is_decoded_at_a_reduced_scale_and_turned_upright(tmp_path):
    # A big photo for a small input: decoded at 1/8 scale, within a few grey levels of a full
    # decode resized the same way.
    (tmp_path / "big").mkdir()
    yy, xx = np.mgrid[0:600, 0:800]
    photo = np.stack([xx * 255 // 800, yy * 255 // 600, (xx + yy) % 256], axis=2).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big" / "photo.jpg", quality=95)
    x, _, _ = load_dataset(f"imagefolder:{tmp_path}", input_size=(30, 40))
    pixels = denormalize(x, *dataset_normalization("imagefolder:x"))[0]
    full = torch.from_numpy(np.asarray(Image.open(tmp_path / "big" / "photo.jpg"), np.float32))
    full = torch.nn.functional.interpolate(
        full.permute(2, 0, 1)[None] / 255.0, size=(30, 40), mode="bilinear", antialias=True
    )[0]
    assert float((pixels - full).abs().mean()) < 0.02

    # EXIF orientation 6: the stored image is shown turned 90 degrees clockwise, so its black
    # left half comes out on top
    (tmp_path / "big" / "photo.jpg").unlink()
    sideways = np.zeros((20, 40, 3), np.uint8)
    sideways[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sideways).save(tmp_path / "big" / "turned.jpg", exif=exif, quality=95)
    x, _, _ = load_dataset(f"imagefolder:{tmp_path}", input_size=(40, 20))
    upright = denormalize(x, *dataset_normalization("imagefolder:x"))[0].mean(0)  # (40, 20)
    assert float(upright[:15].mean()) < 0.1 and float(upright[25:].mean()) > 0.9


def test_bad_image_folders_are_explained(tmp_path):
    from vizlib.data import check_image_folder

    def message(path) -> str:
        with pytest.raises(ValueError) as err:
            check_image_folder(path)
        return str(err.value)

    assert "No path given" in message("  ")
    assert "does not exist" in message(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    assert "is a file" in message(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    assert "has no sub-folders" in message(tmp_path / "empty")
    flat = tmp_path / "flat"  # images but no class folders: the user picked a class folder
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(flat / "a.png")
    assert "holds images but no class sub-folders" in message(flat)
    gap = tmp_path / "gap"
    write_image_folder(gap)
    (gap / "dates").mkdir()
    (gap / "dates" / "list.txt").write_text("no images here")
    text = message(gap)
    assert "'dates'" in text and "no image files" in text
    assert "'dates'" in str(pytest.raises(ValueError, load_dataset, f"imagefolder:{gap}").value)
    # a file named like an image that is not one: the probe opens the first image of each class
    bad = tmp_path / "bad"
    write_image_folder(bad)
    for path in (bad / "apples").glob("*.png"):
        path.write_bytes(b"not a png")
    assert "could not be opened as an image" in message(bad)
    # without the probe (listing) it passes; loading it names the file
    assert check_image_folder(bad, probe=False).classes == FRUIT
    with pytest.raises(ValueError, match=r"Could not read the image .*apples.*00\.png"):
        load_dataset(f"imagefolder:{bad}", input_size=8, indices=[0])
    info = check_image_folder(bad / ".." / "bad", probe=False)  # ".." is resolved
    assert info.path == bad and info.name == f"imagefolder:{bad}"


def test_a_class_folder_is_read_only_so_far_for_an_image(tmp_path):
    """Looking for a class's first image stops after 2,000 entries: a class folder with none
    among them is reported so, and the whole folder is not walked."""
    from vizlib.data import check_image_folder

    write_image_folder(tmp_path)
    crowded = tmp_path / "durians"
    crowded.mkdir()
    for i in range(2_100):
        (crowded / f"{i}.txt").touch()
    with pytest.raises(ValueError, match="'durians'.*first 2,000 entries"):
        check_image_folder(tmp_path)


def test_the_data_root_itself_is_an_image_folder_when_it_holds_classes(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    assert available_datasets()[f"imagefolder:{tmp_path}"].endswith(": 3 classes")


# ----------------------------------------------------------------------------------- CIFAR-10
CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR_BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote CIFAR-10's files (protocol 2): text and bytes as Python
    2 ``str`` (SHORT_BINSTRING / BINSTRING, read back as bytes with ``encoding="bytes"``), numpy's
    booleans as the ints Python 2's numpy gave, and numpy's ``_reconstruct`` under numpy 1's
    module name. (Python 3's protocol 2 would write bytes through ``_codecs.encode`` instead.)"""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("ascii") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_py2_bool(self, obj):
        self.write(pickle.BININT1 + bytes([int(obj)]))

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str
    dispatch[bool] = save_py2_bool


def python2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(obj)
    numpy2, numpy1 = b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n"
    return buf.getvalue().replace(numpy2, numpy1 + b"_reconstruct\n")


def _as_text_keys(obj):
    """The same dict as Python 3 would write it: str keys and str names."""
    if isinstance(obj, dict):
        return {k.decode(): _as_text_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [v.decode() if isinstance(v, bytes) else v for v in obj]
    return obj.decode() if isinstance(obj, bytes) else obj


def write_cifar_file(path, obj, *, python2: bool = True) -> None:
    blob = python2_pickle(obj) if python2 else pickle.dumps(_as_text_keys(obj), protocol=4)
    path.write_bytes(blob)


def cifar_batch(data: np.ndarray, labels: list[int], name: str) -> dict:
    return {
        b"batch_label": f"{name} of CIFAR-10 (fake)".encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(labels))],
    }


def write_fake_cifar(root, sizes=(3, 4, 2, 5, 1, 6), *, python2: bool = True) -> dict:
    """Write a small CIFAR-10 (random pixels and labels, batches of ``sizes``: five train, one
    test) under ``root`` as the python version's files are written; return {split: (pixels
    (N, 3072) uint8, labels (N,))}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = {"train": ([], []), "test": ([], [])}
    for file, n in zip(CIFAR_BATCHES, sizes, strict=True):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        write_cifar_file(folder / file, cifar_batch(data, labels, file), python2=python2)
        split = rows["test" if file == "test_batch" else "train"]
        split[0].append(data)
        split[1].extend(labels)
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [c.encode() for c in CIFAR_CLASSES],
        b"num_vis": 3072,
    }
    write_cifar_file(folder / "batches.meta", meta, python2=python2)
    return {split: (np.concatenate(d), np.array(y)) for split, (d, y) in rows.items()}


@pytest.fixture
def cifar_module(monkeypatch):
    """vizlib.data.datasets with an empty CIFAR-10 cache and each batch file's reads counted."""
    from vizlib.data import datasets as module

    module._read_cifar_split.cache_clear()
    reads: list[str] = []
    read = module._load_cifar_batch
    monkeypatch.setattr(module, "_load_cifar_batch", lambda p: reads.append(p.name) or read(p))
    module.reads = reads
    yield module
    module._read_cifar_split.cache_clear()
    del module.reads


def test_fake_cifar_files_are_written_as_the_real_ones(tmp_path):
    write_fake_cifar(tmp_path)
    blob = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(blob)]
    assert blob[:2] == b"\x80\x02"  # protocol 2
    assert {arg for name, arg in ops if name == "GLOBAL"} == {
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    }  # fmt: skip
    texts = {name for name, _ in ops if "STRING" in name or "UNICODE" in name or "BYTES" in name}
    assert texts == {"SHORT_BINSTRING", "BINSTRING"}  # Python 2 str, as cPickle wrote them


@pytest.mark.parametrize("python2", [True, False], ids=["python2-pickles", "python3-pickles"])
def test_cifar_is_read_as_torchvision_reads_it_without_pickle_load(
    tmp_path, monkeypatch, cifar_module, python2
):
    import torchvision.datasets.cifar as tv_cifar
    from torchvision import datasets

    rows = write_fake_cifar(tmp_path, python2=python2)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    # the reference: torchvision's own reader (its checksums are those of the real files)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    expected = {}
    for split in ("train", "test"):
        ds = datasets.CIFAR10(str(tmp_path), train=split == "train")
        expected[split] = (ds.data.transpose(0, 3, 1, 2), ds.targets, ds.classes)  # NCHW

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("torchvision read CIFAR-10")

    def no_pickle_load(*args, **kwargs):
        raise AssertionError("pickle.load was called")

    monkeypatch.setattr(datasets, "CIFAR10", Refused)
    monkeypatch.setattr(pickle, "load", no_pickle_load)
    monkeypatch.setattr(pickle, "loads", no_pickle_load)
    for split in ("train", "test"):
        x, y, names = load_dataset("cifar10", split, keep_uint8=True)
        ref_x, ref_y, ref_names = expected[split]
        assert x.dtype == torch.uint8 and x.shape == (len(ref_y), 3, 32, 32)
        np.testing.assert_array_equal(x.numpy(), ref_x)
        assert y.dtype == torch.int64 and y.tolist() == ref_y == rows[split][1].tolist()
        assert names == ref_names == CIFAR_CLASSES
    # by hand: a row is the red, then green, then blue plane, each row by row
    x, _, _ = load_dataset("cifar10", "train", indices=[7], keep_uint8=True)
    row = rows["train"][0][7]
    assert int(x[0, 1, 2, 5]) == row[1024 + 2 * 32 + 5] and int(x[0, 2, 31, 0]) == row[2048 + 992]
    # subsets and the float path
    x, y, _ = load_dataset("cifar10", "train", indices=[14, 0, 3], keep_uint8=True)
    np.testing.assert_array_equal(x.numpy(), expected["train"][0][[14, 0, 3]])
    assert y.tolist() == [expected["train"][1][i] for i in (14, 0, 3)]
    x, y, _ = load_dataset("cifar10", "test", max_samples=4)
    mean, std = dataset_normalization("cifar10")
    ref = (expected["test"][0][:4] / 255.0 - np.reshape(mean, (3, 1, 1))) / np.reshape(
        std, (3, 1, 1)
    )
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-6)
    assert x.dtype == torch.float32 and y.tolist() == expected["test"][1][:4]
    x, _, _ = load_dataset("cifar10", "test", indices=[1])
    x[:] = 0  # the caller's own copy: the cached pixels are unchanged
    again, _, _ = load_dataset("cifar10", "test", indices=[1], keep_uint8=True)
    np.testing.assert_array_equal(again.numpy(), expected["test"][0][[1]])


def test_cifar_is_counted_and_loaded_with_each_file_read_once(tmp_path, monkeypatch, cifar_module):
    write_fake_cifar(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    assert dataset_size("cifar10", "train") == 15 and dataset_size("cifar10", "test") == 6
    # the Embeddings page's order: count both splits, then load a subset of each
    load_dataset("cifar10", "train", indices=[0, 9], keep_uint8=True)
    load_dataset("cifar10", "test", indices=[5], keep_uint8=True)
    load_dataset("cifar10", "test", input_size=16)
    assert dataset_size("cifar10", "train") == 15
    assert sorted(cifar_module.reads) == sorted(CIFAR_BATCHES)  # each file once
    # a file that changes is read again, with its split
    folder = tmp_path / "cifar-10-batches-py"
    data = np.full((2, 3072), 7, dtype=np.uint8)
    write_cifar_file(folder / "test_batch", cifar_batch(data, [3, 4], "test_batch"))
    assert dataset_size("cifar10", "test") == 2
    x, y, _ = load_dataset("cifar10", "test", keep_uint8=True)
    assert y.tolist() == [3, 4] and bool((x == 7).all())
    assert sorted(cifar_module.reads) == sorted([*CIFAR_BATCHES, "test_batch"])


def test_cifar_class_names_come_from_batches_meta(tmp_path, monkeypatch, cifar_module):
    write_fake_cifar(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    names = [f"class {i}" for i in range(10)]
    write_cifar_file(meta, {b"label_names": [n.encode() for n in names]})
    assert load_dataset("cifar10", "test", indices=[0])[2] == names
    meta.unlink()  # the known names when it is missing
    assert load_dataset("cifar10", "test", indices=[0])[2] == CIFAR_CLASSES
    write_cifar_file(meta, {b"label_names": [b"cat", b"dog"]})
    with pytest.raises(ValueError, match="batches.meta: it lists no 10 class names"):
        load_dataset("cifar10", "test", indices=[0])


def _pwned_by_system(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return Payload(), "posix.system" if os.name == "posix" else "nt.system"


def _pwned_by_eval(marker):
    class Payload:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w').close()",))

    return Payload(), "(__builtin__|builtins).eval"  # Python 2's name in protocol 2


@pytest.mark.parametrize("payload", [_pwned_by_system, _pwned_by_eval], ids=["system", "eval"])
@pytest.mark.parametrize("file", ["data_batch_3", "test_batch", "batches.meta"])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_malicious_cifar_pickle_is_refused_and_never_run(
    tmp_path, monkeypatch, cifar_module, payload, file, protocol
):
    write_fake_cifar(tmp_path / "data")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path / "data"))
    marker = tmp_path / "pwned"
    evil, target = payload(marker)
    path = tmp_path / "data" / "cifar-10-batches-py" / file
    key = b"label_names" if file == "batches.meta" else b"labels"
    batch = {key: evil, b"data": np.zeros((1, 3072), np.uint8)}
    blob = python2_pickle(batch) if protocol == 2 else pickle.dumps(batch, protocol=protocol)
    path.write_bytes(blob)
    split = "test" if file == "test_batch" else "train"
    message = rf"{path} is not a CIFAR-10 (batch|batches\.meta): it asks to load {target}"
    with pytest.raises(ValueError, match=message):
        dataset_size("cifar10", split)
    with pytest.raises(ValueError, match="nothing in it was run"):
        load_dataset("cifar10", split, indices=[0])
    assert not marker.exists()
    # the payload is live: a plain unpickling runs it
    pickle.loads(blob, encoding="bytes")
    assert marker.exists()


def _bad_batches() -> dict[str, bytes]:
    good = python2_pickle(cifar_batch(np.zeros((4, 3072), np.uint8), [0, 1, 2, 9], "b"))
    cases = {
        "truncated": (good[: len(good) // 2], "could not be unpickled: pickle data was truncated"),
        "empty": (b"", "could not be unpickled: the file ends too early"),
        "not a pickle": (b"\x89PNG\r\n\x1a\n not a batch", "could not be unpickled"),
        "a list": (python2_pickle([1, 2]), "it holds a list, not a dict"),
        "no labels": (python2_pickle({b"data": np.zeros((1, 3072), np.uint8)}), "no 'labels'"),
    }
    wrong = {
        "wrong shape": (np.zeros((4, 1024), np.uint8), [0] * 4, r"uint8 of shape \(4, 1024\)"),
        "floats": (np.zeros((4, 3072), np.float32), [0] * 4, "float32 of shape"),
        "objects": (np.array([[1, "x"]] * 4, dtype=object), [0] * 4, "object of shape"),
        "label 10": (np.zeros((4, 3072), np.uint8), [0, 1, 10, 2], "not all class numbers 0 to 9"),
        "3 labels": (np.zeros((4, 3072), np.uint8), [0, 1, 2], "are 3 labels, not a list of 4"),
    }
    for case, (data, labels, why) in wrong.items():
        cases[case] = (python2_pickle(cifar_batch(data, labels, "b")), why)
    return cases


@pytest.mark.parametrize("case", list(_bad_batches()))
def test_a_broken_cifar_batch_is_a_clear_value_error(tmp_path, monkeypatch, cifar_module, case):
    blob, why = _bad_batches()[case]
    write_fake_cifar(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=rf"{path} is not a CIFAR-10 batch\b.*{why}"):
        dataset_size("cifar10", "train")
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "train", indices=[0])
    assert dataset_size("cifar10", "test") == 6  # the other split is unaffected


def test_a_missing_cifar_batch_is_named(tmp_path, monkeypatch, cifar_module):
    write_fake_cifar(tmp_path)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(ValueError, match="not found under .* has no file data_batch_4"):
        load_dataset("cifar10", "train")
    assert dataset_size("cifar10", "test") == 6


def test_denormalize_clips_unless_asked_and_keeps_the_device():
    x = torch.tensor([[[[-3.0, 0.0, 3.0]]], [[[1.0, 2.0, -1.0]]]])  # (2, 1, 1, 3)
    clipped = denormalize(x, [0.5], [0.25])
    assert clipped.tolist() == [[[[0.0, 0.5, 1.0]]], [[[0.75, 1.0, 0.25]]]]
    raw = denormalize(x, [0.5], [0.25], clip=False)
    assert raw.tolist() == [[[[-0.25, 0.5, 1.25]]], [[[0.75, 1.0, 0.25]]]]
    assert raw.device == x.device and raw.dtype == torch.float32


@pytest.mark.gpu
def test_denormalize_works_on_the_gpu():
    x = torch.tensor([[[[-3.0, 0.0, 3.0]]]], device="cuda")
    pixels = denormalize(x, [0.5], [0.25])  # mean and std were CPU tensors: a device mismatch
    assert pixels.device.type == "cuda" and pixels.cpu().tolist() == [[[[0.0, 0.5, 1.0]]]]
