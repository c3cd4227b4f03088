"""vizlib.similarity against independent computations: CKA by its feature-space formula
(Kornblith et al. 2019, eq. 5), the unbiased HSIC by its U-statistic summed over every
4-tuple of distinct images (Song et al. 2012), and each layer's Gram matrix from the layer's
output computed without hooks."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from vizlib import zoo
from vizlib.data import load_dataset
from vizlib.plots import plot_cka_matches, plot_cka_matrix
from vizlib.similarity import (
    CKAAccumulator,
    cka,
    gram_linear,
    hsic_unbiased,
    layer_grams,
    layer_similarity,
    similarity_layers,
)


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def _cka_by_features(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019), eq. 5: ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F), centred features."""
    x, y = _centred(x), _centred(y)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _hsic_u_statistic(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012), Theorem 2: the mean over 4-tuples (i, j, q, r) of distinct indices of
    h = 1/4! sum over their orderings (t, u, v, w) of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv."""
    n = len(K)
    total, count = 0.0, 0
    for tup in itertools.permutations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations(tup):
            h += K[t, u] * L[t, u] + K[t, u] * L[v, w] - 2 * K[t, u] * L[t, v]
        total += h / 24
        count += 1
    return total / count


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12))
    y = np.tanh(x @ rng.normal(size=(12, 7))) + 0.3 * rng.normal(size=(60, 7))
    return x, y


def test_cka_is_the_feature_space_formula(features):
    x, y = features
    assert cka(x, y) == pytest.approx(_cka_by_features(x, y), rel=1e-6)
    assert 0.2 < cka(x, y) < 0.95  # related, not the same: the check above is not trivial


def test_cka_is_invariant_to_rotation_isotropic_scaling_and_shifts_only(features):
    x, _ = features
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))  # orthogonal
    for unbiased in (False, True):
        assert cka(x, x, unbiased=unbiased) == pytest.approx(1.0)
        assert cka(x, 3.5 * x @ q + 7.0, unbiased=unbiased) == pytest.approx(1.0, abs=1e-6)
    stretched = x * np.geomspace(0.05, 20, 12)  # a non-isotropic scaling changes it
    assert cka(x, stretched) < 0.9


def test_hsic_unbiased_is_the_u_statistic():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2)) + 1.0
    K, L = x @ x.T, y @ y.T  # not centred: the estimator does not need it
    expected = _hsic_u_statistic(K, L)
    got = hsic_unbiased(torch.tensor(K), torch.tensor(L))
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # stacked: every pair of a batch of matrices at once
    stack = hsic_unbiased(torch.tensor(np.stack([K, L])), torch.tensor(np.stack([L, K, L])))
    assert stack.shape == (2, 3)
    assert float(stack[0, 2]) == pytest.approx(expected, rel=1e-9)
    assert float(stack[1, 1]) == pytest.approx(expected, rel=1e-9)


def test_hsic_unbiased_ignores_a_shift_of_the_features():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 5))
    shifted = x + rng.normal(size=(1, 4)) * 10
    plain = hsic_unbiased(torch.tensor(x @ x.T), torch.tensor(y @ y.T))
    moved = hsic_unbiased(torch.tensor(shifted @ shifted.T), torch.tensor(y @ y.T))
    assert float(moved) == pytest.approx(float(plain), rel=1e-8)


def test_one_minibatch_gives_the_unbiased_cka(features):
    x, y = features
    acc = CKAAccumulator()
    acc.add(gram_linear(torch.tensor(x))[None], gram_linear(torch.tensor(y))[None])
    assert acc.matrix()[0, 0] == pytest.approx(cka(x, y, unbiased=True), rel=1e-9)
    assert (acc.batches, acc.images) == (1, 60)


def test_minibatches_estimate_the_full_cka():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 20))
    y = x[:, :10] @ rng.normal(size=(10, 10)) + rng.normal(size=(600, 10))
    full = cka(x, y, unbiased=True)
    acc = CKAAccumulator()
    for lo in range(0, 600, 50):
        acc.add(
            gram_linear(torch.tensor(x[lo : lo + 50]))[None],
            gram_linear(torch.tensor(y[lo : lo + 50]))[None],
        )
    assert acc.matrix()[0, 0] == pytest.approx(full, abs=0.03)
    assert acc.batches == 12


def test_a_constant_layer_has_no_cka():
    x = np.random.default_rng(5).normal(size=(10, 3))
    assert np.isnan(cka(x, np.ones((10, 4))))
    acc = CKAAccumulator()
    acc.add(gram_linear(torch.tensor(x))[None], gram_linear(torch.ones(10, 4))[None])
    assert np.isnan(acc.matrix()[0, 0])


def test_a_layer_constant_up_to_rounding_has_no_cka_but_a_small_spread_is_kept():
    """vit_digits' class token at blocks.0.norm1 is the same for every image but for float32
    rounding (2.5e-7 of its size): its CKA read 0 against every layer, "unrelated", instead of
    undefined. A real spread of 1e-4 of a feature's size is still compared."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(12, 5))
    base = rng.normal(size=(1, 4)) * 3
    rounding = np.repeat(base, 12, axis=0) * (1 + rng.normal(size=(12, 4)) * 2e-7)
    assert np.isnan(cka(x, rounding.astype(np.float32)))
    assert np.isnan(cka(x, rounding.astype(np.float32), unbiased=True))
    acc = CKAAccumulator()
    acc.add(gram_linear(torch.tensor(x))[None], gram_linear(torch.tensor(rounding))[None])
    assert np.isnan(acc.matrix()[0, 0])
    # a spread well above rounding (1e-4 of the size, one feature near 1000): a number, and the
    # same as the CKA of the spread alone (a shift changes no CKA)
    spread = rng.normal(size=(12, 4))
    y = np.concatenate([np.full((12, 1), 1000.0), 1000 + spread[:, 1:] * 0.1], axis=1)
    assert cka(x, y) == pytest.approx(cka(x, spread[:, 1:]), rel=1e-3)


def test_class_token_mode_uses_token_zero():
    tokens = torch.randn(6, 5, 4)  # (B, T, D)
    assert torch.allclose(gram_linear(tokens, tokens="class"), gram_linear(tokens[:, 0]))
    assert torch.allclose(gram_linear(tokens), gram_linear(tokens.flatten(1)))
    with pytest.raises(ValueError, match="tokens"):
        gram_linear(tokens, tokens="mean")


# ----------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def digits_resnet():
    model, meta = zoo.load_model("resnet_digits")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    return model, images[:40]


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_layer_grams_are_those_of_the_layer_outputs(digits_resnet):
    model, images = digits_resnet
    x = images[:12]
    with torch.no_grad():  # the first block by hand; relu is in place in neither call
        block = model.layers[0]
        stem = model.stem(x)
        bn1 = block.bn1(block.conv1(stem))
        relu1 = torch.relu(bn1)
        bn2 = block.bn2(block.conv2(relu1))
        out = torch.relu(bn2 + stem)
        logits = model(x)
    layers = [
        "input",
        "stem",
        "layers.0.bn1",
        "layers.0.relu1",
        "layers.0.bn2",
        "layers.0",
        "output",
    ]
    grams = layer_grams(model, x, layers)
    for row, expected in enumerate([x, stem, bn1, relu1, bn2, out, logits]):
        e = _centred(expected.flatten(1).double().numpy())
        assert np.allclose(
            grams[row].numpy(), e @ e.T, rtol=1e-4, atol=1e-4 * np.abs(e @ e.T).max()
        )
    assert _no_hooks(model)


def test_a_module_called_twice_is_one_layer_per_call():
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(
        nn.Linear(5, 6), relu, nn.Dropout(0.5), nn.Linear(6, 6), relu, nn.Flatten(), nn.Identity()
    ).eval()
    x = torch.randn(10, 5)
    layers = similarity_layers(model, x, "all")
    # dropout (eval), flatten, identity and the Sequential itself repeat the layer before them
    assert layers == ["input", "0", "1 (call 1)", "3", "1 (call 2)"]
    grams = layer_grams(model, x, layers)
    with torch.no_grad():
        second = relu(model[3](relu(model[0](x))))
    e = _centred(second.double().numpy())
    assert np.allclose(grams[4].numpy(), e @ e.T, atol=1e-5)


def test_every_layer_of_lenet_in_call_order():
    model, meta = zoo.load_model("lenet_digits")
    x = torch.randn(4, *meta["input_size"])
    assert similarity_layers(model, x, "all") == [
        "input", "conv1", "pool1", "relu1", "conv2", "pool2", "relu2", "fc1", "relu3", "fc2",
    ]  # fmt: skip
    assert similarity_layers(model, x, "blocks") == ["input", "relu1", "relu2", "relu3", "output"]


def test_a_model_against_itself_and_its_copy(digits_resnet):
    model, images = digits_resnet
    layers = similarity_layers(model, images[:8], "blocks")
    self_sim = layer_similarity(model, images, layers, batch_size=16)
    m = self_sim.matrix
    assert m.shape == (len(layers), len(layers))
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert np.nanmin(m) > 0 and np.nanmax(m) <= 1 + 1e-9
    assert (self_sim.images, self_sim.batches) == (40, 3)  # 40 images in runs of 13-14
    twin = layer_similarity(
        model, images, layers, copy.deepcopy(model), images, layers, batch_size=16
    )
    assert np.allclose(twin.matrix, m, atol=1e-9)
    assert _no_hooks(model)


def test_different_models_on_their_own_input_sizes():
    lenet, lenet_meta = zoo.load_model("lenet_digits")
    vit, vit_meta = zoo.load_model("vit_digits")
    small, _, _ = load_dataset("digits", "test", input_size=lenet_meta["input_size"][1:])
    large, _, _ = load_dataset("digits", "test", input_size=vit_meta["input_size"][1:])
    la, lb = ["input", "relu1", "output"], ["input", "blocks.0", "output"]
    result = layer_similarity(lenet, small[:64], la, vit, large[:64], lb, batch_size=32)
    assert result.matrix.shape == (3, 3)
    # both models' outputs of the same digits, by the full-batch formula the minibatches estimate
    with torch.no_grad():
        full = cka(lenet(small[:64]), vit(large[:64]), unbiased=True)
    assert result.matrix[2, 2] == pytest.approx(full, abs=0.1)
    assert result.matrix[2, 2] > 0.5  # two trained digit classifiers agree on their logits
    with pytest.raises(ValueError, match="differ in size"):
        layer_similarity(lenet, small[:64], la, vit, large[:32], lb)


def test_hooks_go_even_when_the_pass_fails(digits_resnet):
    model, images = digits_resnet
    with pytest.raises(ValueError, match="no layer"):
        layer_grams(model, images[:8], ["layers.0.nope"])
    with pytest.raises(RuntimeError):
        layer_grams(model, torch.randn(8, 3, 28, 28), ["stem", "layers.0"])  # 3 channels, not 1
    assert _no_hooks(model)
    with pytest.raises(ValueError, match="at least 4 images"):
        layer_similarity(model, images[:3], ["stem"])


@pytest.mark.gpu
def test_the_gpu_gives_the_cpus_matrix(digits_resnet):
    model, images = digits_resnet
    layers = similarity_layers(model, images[:8], "all")
    cpu = layer_similarity(model, images, layers, batch_size=16)
    on_gpu = copy.deepcopy(model).to("cuda")
    assert similarity_layers(on_gpu, images[:8], "all") == layers  # CPU images, a GPU model
    gpu = layer_similarity(on_gpu, images, layers, batch_size=16)
    assert np.allclose(gpu.matrix, cpu.matrix, atol=1e-3)


# ----------------------------------------------------------------------------- figures


def test_the_matrix_figure_puts_model_a_on_the_rows():
    m = np.array([[1.0, 0.2, np.nan], [0.3, 0.9, np.nan]])
    fig = plot_cka_matrix(
        m, ["input", "conv"], ["input", "block", "dead"], name_a="A", name_b="B", images=64
    )
    heat = fig.data[0]
    assert np.array_equal(np.asarray(heat.z), m, equal_nan=True)
    assert heat.customdata[1][0] == "A: conv (1)<br>B: input (0)"
    assert list(fig.layout.xaxis.ticktext) == ["input", "block", "dead"]
    assert (heat.zmin, heat.zmax) == (0, 1)
    with pytest.raises(ValueError, match="layers"):
        plot_cka_matrix(m, ["input"], ["a", "b", "c"], name_a="A", name_b="B", images=64)


def test_many_layers_are_numbered_and_named_on_hover():
    layers = [f"encoder.layers.encoder_layer_{i}" for i in range(30)]
    fig = plot_cka_matrix(np.eye(30), layers, layers, name_a="A", name_b="A", images=8)
    assert list(fig.layout.xaxis.tickvals) == list(range(0, 30, 3))
    assert "encoder_layer_29 (29)" in fig.data[0].customdata[29][29]


def test_best_matches_and_the_same_layer():
    m = np.array([[0.9, 0.1, 0.4], [0.2, 0.3, 0.8], [np.nan, np.nan, np.nan]])
    fig = plot_cka_matches(
        m, ["a0", "a1", "a2"], ["b0", "b1", "b2"], name_a="A", name_b="B", same_layers=True
    )
    same, best = fig.data
    assert np.allclose(same.y, [0.9, 0.3, np.nan], equal_nan=True)
    assert np.allclose(best.y, [0.9, 0.8, np.nan], equal_nan=True)
    assert [row[1] for row in best.customdata] == ["b0", "b2", ""]
    fig = plot_cka_matches(m[:, :2], ["a0", "a1", "a2"], ["b0", "b1"], name_a="A", name_b="C")
    assert len(fig.data) == 1 and np.allclose(fig.data[0].y[:2], [0.9, 0.3])


def test_layers_that_overflow_are_named_not_called_constant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    with torch.no_grad():
        model[3].weight.mul_(3e38)  # finite weights whose outputs overflow to inf
    x = torch.rand(12, 1, 4, 4) + 1
    result = layer_similarity(model, x, ["input", "1", "3", "output"], batch_size=6)
    assert result.nonfinite_a == result.nonfinite_b == ["3", "output"]
    assert np.isnan(result.matrix[2:]).all() and np.isfinite(result.matrix[:2, :2]).all()


def test_vit_b_16s_block_names_are_shortened_on_the_axis():
    layers = ["input", *(f"encoder.layers.encoder_layer_{i}" for i in range(12)), "encoder.ln"]
    fig = plot_cka_matrix(
        np.eye(14), layers, layers, name_a="vit_b_16", name_b="vit_b_16", images=8
    )
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[0] == "input" and ticks[12] == "…layer_11" and ticks[13] == "encoder.ln"
    assert fig.layout.xaxis.title.text.endswith("… = encoder.layers.encoder_")
    assert (
        "encoder.layers.encoder_layer_11 (12)" in fig.data[0].customdata[12][12]
    )  # whole on hover
