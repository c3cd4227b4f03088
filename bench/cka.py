"""Benchmark: what the Layer Similarity page's CKA costs, pass for pass as the page runs it.

Prints one table with the device: for each pair of models, the layers compared, the images,
the seconds of ``vizlib.similarity.layer_similarity`` (median of the repeats, after one warm-up
run; the layer listing is not counted) and, on a GPU, the peak memory it allocated. The digit
models see the digits test split; torchvision's resnet18 and vit_b_16 (random weights: speed
does not depend on them) see the sample photos' crops, as the page shows them without ImageNet.

Usage: ``python bench/cka.py [--device cuda|cpu] [--repeats R] [--large-images N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vizlib import zoo  # noqa: E402
from vizlib.data import load_dataset, prepare_image, sample_crops  # noqa: E402
from vizlib.device import describe_device, resolve_device  # noqa: E402
from vizlib.similarity import layer_similarity, similarity_layers  # noqa: E402

CROPS_PER_PHOTO = 16  # as the page


def _images(meta: dict, large: int) -> torch.Tensor:
    if meta["dataset"] == "digits":
        return load_dataset("digits", "test", input_size=meta["input_size"][1:])[0]
    crops = sample_crops(CROPS_PER_PHOTO)[:large]
    return torch.cat([prepare_image(crop, meta) for _, crop in crops])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: vizlib's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-images", type=int, default=64, help="images of 224 x 224")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cases = [
        ("lenet_digits", None, "blocks"),
        ("lenet_digits", None, "all"),
        ("vit_digits", "lenet_digits", "all"),
        ("resnet18", "vit_b_16", "blocks"),
        ("resnet18", None, "all"),
        ("vit_b_16", None, "all"),
    ]
    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    print("| model | against | layers | images | seconds | ms per image | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|")
    for name_a, name_b, granularity in cases:
        model_a, meta_a = zoo.load_model(name_a, device=device)
        images_a = _images(meta_a, args.large_images)
        layers_a = similarity_layers(model_a, images_a[:4].to(device), granularity)
        model_b = images_b = layers_b = None
        if name_b is not None:
            model_b, meta_b = zoo.load_model(name_b, device=device)
            images_b = _images(meta_b, args.large_images)
            layers_b = similarity_layers(model_b, images_b[:4].to(device), granularity)
        small = meta_a["input_size"][1] * meta_a["input_size"][2] <= 64 * 64

        def run(
            model_a=model_a, images_a=images_a, layers_a=layers_a, model_b=model_b,
            images_b=images_b, layers_b=layers_b, small=small,
        ):  # fmt: skip
            return layer_similarity(
                model_a, images_a, layers_a, model_b, images_b, layers_b,
                batch_size=64 if small else 32, device=device,
            )  # fmt: skip

        run()  # warm-up: kernels, caches
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.repeats):
            _sync(device)
            start = time.perf_counter()
            result = run()
            _sync(device)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        peak = (
            f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}"
            if device.type == "cuda"
            else "-"
        )
        shape = f"{len(result.layers_a)} x {len(result.layers_b)}"
        print(
            f"| {name_a} | {name_b or 'itself'} | {granularity}: {shape} | {result.images} | "
            f"{seconds:.2f} | {1000 * seconds / result.images:.1f} | {peak} |"
        )


if __name__ == "__main__":
    main()
