"""The model randomisation test (Adebayo et al. 2018): the cascade's stages, each stage's maps
against autograd on a network re-initialised by hand, the similarity measures against scipy and
scikit-image, and the shared model untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from tests import test_attribution
from vizlib import zoo
from vizlib.attribution import (
    attribute,
    cascading_randomization,
    map_similarity,
    randomization_stages,
)
from vizlib.data import load_dataset

# the seeded LeNet (left as found: weights, hooks, mode) and the image of test_attribution
lenet = test_attribution.lenet
image = test_attribution.image


def test_the_cascade_runs_from_the_output_to_the_input(lenet):
    assert randomization_stages(lenet) == [["fc2"], ["fc1"], ["conv2"], ["conv1"]]
    assert randomization_stages(lenet, max_stages=2) == [["fc2", "fc1"], ["conv2", "conv1"]]
    resnet, _ = zoo.load_model("resnet_digits")
    owners = [n for n, m in resnet.named_modules() if list(m.parameters(recurse=False))]
    groups = randomization_stages(resnet, max_stages=8)
    assert len(groups) == 8 and sum(groups, []) == owners[::-1]
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    with pytest.raises(ValueError, match="max_stages"):
        randomization_stages(lenet, max_stages=0)


def _saliency_by_hand(net: torch.nn.Module, x: torch.Tensor, target: int) -> np.ndarray:
    x = x[None].clone().requires_grad_(True)
    with torch.enable_grad():
        net(x)[0, target].backward()
    return x.grad[0].sum(0).numpy()


def test_each_stage_explains_the_network_randomised_so_far(lenet, image):
    result = cascading_randomization(lenet, image, 3, ["saliency", "gradcam"], seed=5)
    assert result.stages == ["trained", "fc2", "fc1", "conv2", "conv1"]
    assert result.randomized == [[], ["fc2"], ["fc1"], ["conv2"], ["conv1"]]
    first = attribute(lenet, image, 3, "saliency")["heatmap"]
    assert np.array_equal(result.heatmaps["saliency"][0], first)
    # stage 2 by hand: fc2 then fc1 drawn afresh, seeded by seed + their place in the cascade
    by_hand = copy.deepcopy(lenet)
    for order, name in enumerate(["fc2", "fc1"]):
        torch.manual_seed(5 + order)
        getattr(by_hand, name).reset_parameters()
    np.testing.assert_allclose(
        result.heatmaps["saliency"][2], _saliency_by_hand(by_hand, image, 3), rtol=1e-5, atol=1e-7
    )
    with torch.no_grad():
        assert result.target_logit[0] == pytest.approx(float(lenet(image[None])[0, 3]), rel=1e-6)
        assert result.target_logit[2] == pytest.approx(float(by_hand(image[None])[0, 3]), rel=1e-6)
    assert all(v == pytest.approx(1.0) for v in (result.similarity["saliency"]["spearman_abs"][0],))
    assert result.heatmaps["gradcam"][0].shape == (28, 28)


def test_the_stages_do_not_depend_on_the_methods_run(lenet, image):
    one = cascading_randomization(lenet, image, 1, ["saliency"], seed=0)
    two = cascading_randomization(lenet, image, 1, ["occlusion", "saliency"], seed=0)
    for a, b in zip(one.heatmaps["saliency"], two.heatmaps["saliency"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_map_similarity_is_scipys_and_scikit_images():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 20))
    b = a + rng.normal(size=(20, 20))
    got = map_similarity(a, b)
    assert got["spearman"] == pytest.approx(spearmanr(a.ravel(), b.ravel())[0])
    assert got["spearman_abs"] == pytest.approx(spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0])
    ssim = structural_similarity(
        np.abs(a) / np.abs(a).max(), np.abs(b) / np.abs(b).max(), data_range=1.0, win_size=7
    )
    assert got["ssim"] == pytest.approx(ssim)
    assert map_similarity(a, a) == pytest.approx(
        {"spearman": 1.0, "spearman_abs": 1.0, "ssim": 1.0}
    )
    flat = map_similarity(a, np.zeros_like(a))
    assert all(np.isnan(v) for v in flat.values())
    with pytest.raises(ValueError, match="shape"):
        map_similarity(a, a[:10])


def test_a_trained_digit_model_fails_to_survive_randomisation():
    """The shipped LeNet on a test digit: its saliency map falls apart once the classifier is
    random (rank correlation of the magnitudes under 0.6), as a map that explains the network
    should; the logit of the class is gone too."""
    model, meta = zoo.load_model("lenet_digits")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    result = cascading_randomization(
        model, images[0], int(labels[0]), ["saliency"], mean=meta["mean"], std=meta["std"]
    )
    assert max(result.similarity["saliency"]["spearman_abs"][1:]) < 0.6
    assert result.target_logit[0] > 5 > max(abs(v) for v in result.target_logit[1:])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_vits_own_parameters_are_the_last_stage():
    model, meta = zoo.load_model("vit_digits")
    images, labels, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    before = model.pos_embed.detach().clone()
    result = cascading_randomization(model, images[0], int(labels[0]), ["saliency"], max_stages=3)
    assert result.stages[-1] == "(model)" and "" in result.randomized[-1]
    assert len(result.heatmaps["saliency"]) == 4
    assert torch.equal(model.pos_embed, before)
    with pytest.raises(ValueError, match="choose methods"):
        cascading_randomization(model, images[0], 0, ["guided"])


@pytest.mark.gpu
def test_a_model_on_the_gpu_gets_the_cpus_stages(lenet, image):
    cpu = cascading_randomization(lenet, image, 3, ["saliency", "gradcam"], seed=2)
    state = torch.cuda.get_rng_state()
    gpu = cascading_randomization(
        copy.deepcopy(lenet).to("cuda"), image, 3, ["saliency", "gradcam"], seed=2
    )
    assert torch.equal(torch.cuda.get_rng_state(), state)  # the caller's CUDA stream untouched
    for method in ("saliency", "gradcam"):
        for a, b in zip(cpu.heatmaps[method], gpu.heatmaps[method], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(np.abs(a).max()))
    assert gpu.target_logit == pytest.approx(cpu.target_logit, rel=1e-4, abs=1e-5)


def test_independent_stages_randomise_their_own_layers_only(lenet, image):
    cascade = cascading_randomization(lenet, image, 3, ["saliency"], seed=5)
    alone = cascading_randomization(lenet, image, 3, ["saliency"], seed=5, independent=True)
    assert alone.stages == cascade.stages and alone.randomized == cascade.randomized
    # stage 1 is fc2 alone either way; stage 2, fc1 alone, with the draw the cascade gave it
    np.testing.assert_array_equal(alone.heatmaps["saliency"][1], cascade.heatmaps["saliency"][1])
    by_hand = copy.deepcopy(lenet)
    torch.manual_seed(5 + 1)  # fc1 is the cascade's second module
    by_hand.fc1.reset_parameters()
    np.testing.assert_allclose(
        alone.heatmaps["saliency"][2], _saliency_by_hand(by_hand, image, 3), rtol=1e-5, atol=1e-7
    )
    assert not np.allclose(alone.heatmaps["saliency"][2], cascade.heatmaps["saliency"][2])
