"""vizlib.embedding: P calibration, gradients against autograd, FFT vs exact, quality vs scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from vizlib import embedding as E


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Many small tensor ops: on a shared 2-core machine a second intra-op thread mostly waits.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 120)
    X = rng.normal(size=(4, 10))[labels] * 4 + rng.normal(size=(120, 10))
    return X.astype(np.float32), labels


def _dense_p(X: np.ndarray, perplexity: float) -> np.ndarray:
    """Independent dense P from the kNN sets, calibrated by scipy's root finder."""
    from scipy.optimize import brentq

    n = len(X)
    k = min(n - 1, int(3 * perplexity + 1))
    d2 = ((X[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    P = np.zeros((n, n))
    for i in range(n):
        nb = np.argsort(d2[i])[:k]
        d = d2[i, nb] - d2[i, nb].min()

        def gap(log_beta, d=d):
            p = np.exp(-d * np.exp(log_beta))
            p /= p.sum()
            return -(p[p > 0] * np.log(p[p > 0])).sum() - math.log(perplexity)

        p = np.exp(-d * np.exp(brentq(gap, -30, 30, xtol=1e-12)))
        P[i, nb] = p / p.sum()
    P = P + P.T
    return P / P.sum()


def test_p_matches_dense_calibration(blobs):
    X, _ = blobs
    P = E.joint_probabilities(X, perplexity=10.0, device="cpu").to_dense().numpy()
    ref = _dense_p(X, 10.0)
    np.testing.assert_allclose(P, P.T, atol=1e-9)
    assert P.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(P, ref, atol=1e-6)


def test_rows_have_the_perplexity_entropy(blobs):
    X, _ = blobs
    d2, _idx = E._nearest_neighbours(torch.from_numpy(X), 31)
    cond = E._calibrate_rows(d2, 10.0).numpy()
    entropy = -(cond * np.log(np.clip(cond, 1e-300, None))).sum(1)
    np.testing.assert_allclose(entropy, math.log(10.0), atol=1e-4)
    np.testing.assert_allclose(cond.sum(1), 1.0, atol=1e-9)


def test_exact_gradient_matches_autograd(blobs):
    X, _ = blobs
    P = E.joint_probabilities(X, perplexity=10.0, device="cpu")
    Y = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    grad, kl = E.tsne_gradient(Y, P, method="exact")

    Pd = P.to_dense().double()
    Yg = Y.clone().requires_grad_(True)
    qu = 1.0 / (1.0 + torch.cdist(Yg, Yg) ** 2)
    qu = qu * (1 - torch.eye(len(X), dtype=torch.float64))
    Q = qu / qu.sum()
    mask = Pd > 0
    kl_ref = (Pd[mask] * torch.log(Pd[mask] / Q[mask])).sum()
    kl_value = float(kl_ref.detach())
    kl_ref.backward()
    np.testing.assert_allclose(grad.numpy(), Yg.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert kl == pytest.approx(kl_value, rel=1e-4)


def test_fft_repulsion_within_bound_of_exact():
    gen = torch.Generator().manual_seed(0)
    # a t-SNE-like map: 8 clusters spread over ~60 units
    centres = torch.randn(8, 2, generator=gen) * 20
    Y = (
        centres[torch.randint(0, 8, (1500,), generator=gen)]
        + torch.randn(1500, 2, generator=gen) * 2
    )
    rep, Z = E._repulsive_exact(Y)
    rep_f, Z_f = E._repulsive_fft(Y)
    assert float(Z_f) == pytest.approx(float(Z), rel=1e-2)
    assert float((rep_f - rep).norm() / rep.norm()) < 0.05
    # more nodes per box shrink the interpolation error, as the bound says
    rep_5, Z_5 = E._repulsive_fft(Y, n_interp=5)
    assert float((rep_5 - rep).norm() / rep.norm()) < 0.01
    assert float(Z_5) == pytest.approx(float(Z), rel=1e-3)
    # a map narrower than min_intervals boxes (early iterations): finer, quantised boxes
    small = Y * 0.1
    rep_s, Z_s = E._repulsive_exact(small)
    rep_sf, Z_sf = E._repulsive_fft(small)
    assert float(Z_sf) == pytest.approx(float(Z_s), rel=1e-3)
    assert float((rep_sf - rep_s).norm() / rep_s.norm()) < 0.01
    # the static grids (CUDA graphs): more, equally small boxes, so the same bounds hold
    for Ys, rep_ref, Z_ref in ((Y, rep, Z), (small, rep_s, Z_s)):
        rep_st, Z_st = E._repulsive_fft(Ys, static=True)
        assert float(Z_st) == pytest.approx(float(Z_ref), rel=1e-2)
        assert float((rep_st - rep_ref).norm() / rep_ref.norm()) < 0.05


def test_static_grids_take_few_sizes():
    sizes = {nb: E._static_boxes(nb, 3) for nb in range(20, 683)}
    assert sorted(set(sizes.values())) == [21, 32, 42, 64, 85, 128, 170, 256, 341, 512, 682]
    for nb, static in sizes.items():
        assert nb <= static <= 1.5 * nb + 1  # never fewer boxes; at most 1.5x per axis more
        assert E._static_boxes(static, 3) == static  # a ladder size maps to itself
    # the grid's FFT is the 2^a or 3 x 2^a the ladder was cut for (or a 5-smooth one below it)
    assert E._fft_size(2 * 128 * 3 - 1) == 768 and E._fft_size(2 * 341 * 3 - 1) == 2048
    box, nb = E._fft_grid(100.0, static=True)
    assert (box, nb) == (1.0, 128)
    for span in np.geomspace(1e-4, 19.9, 200):  # fresh maps: 21 boxes of 2^(k/8) ~ span / 20
        box, nb = E._fft_grid(span, static=True)
        assert nb == 21 and span / 21 <= box <= min(span / 19, 1.0)


def test_lagrange_weights_interpolate():
    for p in (2, 3, 5):
        nodes = (torch.arange(p, dtype=torch.float64) + 0.5) / p
        # at the nodes the basis is the identity; anywhere its values sum to 1 and reproduce u^2
        np.testing.assert_allclose(E._lagrange_weights(nodes, p).numpy(), np.eye(p), atol=1e-12)
        u = torch.linspace(0, 1, 11, dtype=torch.float64)
        w = E._lagrange_weights(u, p)  # (11, p)
        np.testing.assert_allclose(w.sum(1).numpy(), 1.0, atol=1e-12)
        if p >= 3:
            np.testing.assert_allclose((w @ nodes**2).numpy(), (u**2).numpy(), atol=1e-12)


def test_segment_sum_paths_agree():
    gen = torch.Generator().manual_seed(0)
    seg = torch.sort(torch.randint(0, 50, (1000,), generator=gen)).values
    vals = torch.randn(1000, 3, generator=gen)
    ptr = torch.searchsorted(seg, torch.arange(51))
    a = E._segment_sum(vals, ptr)  # segment_reduce (CPU path)
    b = E._segment_sum(vals, ptr, prefix_sums=True)  # prefix sums (the CUDA path)
    ref = torch.zeros(50, 3, dtype=torch.float64).index_add_(0, seg, vals.double())
    np.testing.assert_allclose(a.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(b.numpy(), ref.numpy(), atol=1e-5)


def test_attractive_paths_agree(blobs):
    X, _ = blobs
    P = E._joint_p(torch.from_numpy(X), 10.0)
    Y = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(2)) * 5
    cpu, edges_cpu = E._attractive(Y, P)  # segment_reduce (CPU path)
    pre, edges_pre = E._attractive(Y, P, prefix_sums=True)  # prefix sums (CUDA path)
    # independent: dense sum_j p_ij q_ij (y_i - y_j) in float64
    Pd = torch.sparse_coo_tensor(torch.stack([P.rows, P.cols]), P.vals, (P.n, P.n))
    Pd = Pd.to_dense().double()
    Yd = Y.double()
    diff = Yd[:, None, :] - Yd[None, :, :]  # (N, N, 2)
    W = Pd / (1.0 + (diff**2).sum(-1))
    ref = (W[:, :, None] * diff).sum(1)
    np.testing.assert_allclose(cpu.numpy(), ref.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(pre.numpy(), ref.numpy(), rtol=1e-5, atol=1e-8)
    Z = torch.tensor(1000.0, dtype=torch.float64)
    kl_ref = float((Pd[Pd > 0] * torch.log(Pd[Pd > 0] / (W[Pd > 0] / Pd[Pd > 0] / 1000.0))).sum())
    assert E._kl(P, edges_cpu, Z) == pytest.approx(kl_ref, rel=1e-6)
    assert E._kl(P, edges_pre, Z) == pytest.approx(kl_ref, rel=1e-6)


def test_fft_charge_spreading_paths_agree():
    # The ordered segment sum (the path CUDA takes: no atomics) against index_add_ (the CPU's)
    Y = torch.randn(3000, 2, generator=torch.Generator().manual_seed(4)) * 30
    rep_cpu, z_cpu = E._repulsive_fft(Y, ordered=False)
    rep_ord, z_ord = E._repulsive_fft(Y, ordered=True)
    np.testing.assert_allclose(rep_ord.numpy(), rep_cpu.numpy(), rtol=1e-4, atol=1e-3)
    assert float(z_ord) == pytest.approx(float(z_cpu), rel=1e-6)


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_cuda_reduction_paths_run_on_the_cpu(blobs, monkeypatch, method):
    # Every device-independent step of the GPU path (ordered prefix sums for the attraction and
    # the FFT's charges) runs here, so a machine without a GPU still checks its arithmetic.
    X, labels = blobs
    calls = []

    def ordered(device):
        calls.append(device.type)
        return True

    monkeypatch.setattr(E, "_ordered_reductions", ordered)
    monkeypatch.setattr(E, "_static_grids", lambda device: True)  # CUDA graphs' grid sizes
    a = E.tsne(X, perplexity=10, n_iter=300, method=method, device="cpu")
    b = E.tsne(X, perplexity=10, n_iter=300, method=method, device="cpu")
    assert calls and set(calls) == {"cpu"}
    np.testing.assert_array_equal(a, b)
    assert trustworthiness(X, a, n_neighbors=5) > 0.9
    acc = KNeighborsClassifier(5).fit(a[::2], labels[::2]).score(a[1::2], labels[1::2])
    assert acc > 0.95
    # One gradient from the same map: the same numbers as the CPU paths give (the maps
    # themselves drift apart, as any reordering of float sums makes t-SNE's maps do).
    P = E.joint_probabilities(X, perplexity=10)
    grad_ordered, kl_ordered = E.tsne_gradient(a, P, exaggeration=12.0, method=method)
    monkeypatch.undo()
    grad_cpu, kl_cpu = E.tsne_gradient(a, P, exaggeration=12.0, method=method)
    np.testing.assert_allclose(grad_ordered.numpy(), grad_cpu.numpy(), rtol=1e-4, atol=1e-7)
    assert kl_ordered == pytest.approx(kl_cpu, rel=1e-6)


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_optimiser_steps_follow_sklearns_update_rule(blobs, method):
    # scikit-learn's _gradient_descent, in float64 numpy, from tsne_gradient's gradients
    X, _ = blobs
    P = E._joint_p(torch.from_numpy(X), 10.0)
    P_coo = E.joint_probabilities(X, perplexity=10)
    start = np.random.default_rng(1).normal(size=(len(X), 2)) * 3
    lr = 40.0
    opt = E._Optimiser(torch.from_numpy(start).float(), P, method, lr)
    Y, update, gains = start.copy(), np.zeros_like(start), np.ones_like(start)
    for it in range(6):
        if it == 4:
            opt.restart()
            update, gains = np.zeros_like(update), np.ones_like(gains)
        exaggeration, momentum = (12.0, 0.5) if it < 4 else (1.0, 0.8)
        opt.step(exaggeration, momentum)
        grad, _kl = E.tsne_gradient(Y, P_coo, exaggeration=exaggeration, method=method)
        grad = grad.double().numpy()
        inc = update * grad < 0.0
        gains[inc] += 0.2
        gains[~inc] *= 0.8
        np.clip(gains, E.MIN_GAIN, np.inf, out=gains)
        update = momentum * update - lr * (grad * gains)
        Y = Y + update
        np.testing.assert_allclose(opt.Y.double().numpy(), Y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(opt.gains.double().numpy(), gains, rtol=1e-5)


class _RecordedStep:
    """A CPU stand-in for a captured CUDA graph: what a replay does is the captured call again,
    with the tensors it was captured with, writing its results into the captured outputs."""

    def __init__(self, opt, run):
        state = (opt.Y, opt.update, opt.gains)
        saved = [t.clone() for t in state]
        self.run, self.outputs = run, run()  # a capture records; it must not move the map
        for t, s in zip(state, saved, strict=True):
            t.copy_(s)

    def replay(self):
        Z, (qu, _vals, _mult), span = self.run()
        self.outputs[0].copy_(Z)
        self.outputs[1][0].copy_(qu)
        if span is not None:
            self.outputs[2].copy_(span)


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_graph_bookkeeping_replays_the_eager_steps(blobs, monkeypatch, method):
    # The CUDA path's keys, fixed grid tensors (refilled in place when the box changes) and
    # captured outputs, with a CPU stand-in for the graphs: the map must be the eager one.
    X, _ = blobs
    monkeypatch.setattr(E, "_ordered_reductions", lambda device: True)
    monkeypatch.setattr(E, "_static_grids", lambda device: True)
    P = E._joint_p(torch.from_numpy(X), 10.0)
    start = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(0)) * 1e-4
    maps, kls = {}, {}
    for graphs in (True, False):
        opt = E._Optimiser(start.clone(), P, method, lr=50.0)
        if graphs:
            opt.cuda_graphs = True
            monkeypatch.setattr(opt, "_warm_up", lambda run: run())
            monkeypatch.setattr(opt, "_capture", lambda run, opt=opt: _capture_stand_in(opt, run))
        kls[graphs] = []
        for it in range(300):
            if it == E.EXPLORATION_ITERS:
                opt.restart()
            exploring = it < E.EXPLORATION_ITERS
            Z, edges = opt.step(12.0 if exploring else 1.0, 0.5 if exploring else 0.8)
            kls[graphs].append(E._kl(P, edges, Z))
        maps[graphs] = opt.Y.numpy()
        if graphs:
            assert opt.graph_error is None and opt.replays == 300 - len(opt._graphs)
            assert 2 <= len(opt._graphs) <= (2 if method == "exact" else 8)
    np.testing.assert_array_equal(maps[True], maps[False])
    assert kls[True] == kls[False]


def test_a_failed_capture_leaves_the_steps_eager(blobs, monkeypatch, caplog):
    X, _ = blobs
    P = E._joint_p(torch.from_numpy(X), 10.0)
    start = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(0))
    eager = E._Optimiser(start.clone(), P, "fft", lr=50.0)
    opt = E._Optimiser(start.clone(), P, "fft", lr=50.0)
    opt.cuda_graphs = True
    calls = []
    monkeypatch.setattr(opt, "_warm_up", lambda run: calls.append("warm-up") or run())

    def refuse(run):
        calls.append("capture")
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(opt, "_capture", refuse)
    with caplog.at_level("WARNING", logger="vizlib.embedding"):
        for _ in range(20):
            eager.step(12.0, 0.5)
            opt.step(12.0, 0.5)
    assert calls == ["warm-up", "capture"]  # one try, then kernels launched one by one
    assert "not permitted" in opt.graph_error and "capture failed" in caplog.text
    np.testing.assert_array_equal(opt.Y.numpy(), eager.Y.numpy())


def _capture_stand_in(opt, run):
    step = _RecordedStep(opt, run)
    return step, step.outputs


def test_tsne_is_deterministic_and_callback_stops(blobs):
    X, _ = blobs
    a = E.tsne(X, perplexity=10, n_iter=300, seed=3, device="cpu")
    b = E.tsne(X, perplexity=10, n_iter=300, seed=3, device="cpu")
    np.testing.assert_array_equal(a, b)
    seen = []

    def stop_after_50(it, kl):
        seen.append((it, kl))
        return it < 50

    c = E.tsne(
        X, perplexity=10, n_iter=300, device="cpu", callback=stop_after_50, callback_every=10
    )
    assert [it for it, _ in seen] == [10, 20, 30, 40, 50]
    assert all(np.isfinite(kl) and kl > 0 for _, kl in seen)
    assert c.shape == (len(X), 2) and np.isfinite(c).all()


def test_fft_and_exact_maps_agree_on_quality(blobs):
    X, labels = blobs
    for method in ("exact", "fft"):
        Y = E.tsne(X, perplexity=10, n_iter=400, method=method, device="cpu")
        assert trustworthiness(X, Y, n_neighbors=5) > 0.9
        acc = KNeighborsClassifier(5).fit(Y[::2], labels[::2]).score(Y[1::2], labels[1::2])
        assert acc > 0.95


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        (np.array([[0.0, np.nan]] * 10), {}, "NaN or infinite"),
        (np.zeros((10, 3, 2)), {}, "must be 2-D"),
        (np.random.default_rng(0).normal(size=(3, 4)), {}, "at least 4 points"),
        (np.random.default_rng(0).normal(size=(20, 4)), {"perplexity": 30.0}, "perplexity"),
        (
            np.random.default_rng(0).normal(size=(20, 4)),
            {"perplexity": 5.0, "learning_rate": -1},
            "learning_rate",
        ),
        (
            np.random.default_rng(0).normal(size=(20, 4)),
            {"perplexity": 5.0, "method": "bh"},
            "method",
        ),
        (
            np.random.default_rng(0).normal(size=(20, 4)),
            {"perplexity": 5.0, "init": "spectral"},
            "init",
        ),
    ],
)
def test_bad_input_messages(X, kwargs, message):
    with pytest.raises(ValueError, match=message):
        E.tsne(X, device="cpu", n_iter=5, **kwargs)


def test_pca_matches_sklearn():
    X = load_digits().data
    coords, ratio = E.pca(X, 3, device="cpu")
    ref = PCA(3).fit(X)
    ref_coords = ref.transform(X)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-4)
    for j in range(3):  # up to sign
        sign = np.sign(coords[:, j] @ ref_coords[:, j])
        np.testing.assert_allclose(sign * coords[:, j], ref_coords[:, j], atol=1e-3)
    scales = np.r_[10.0, 6.0, np.full(1498, 0.5)]
    wide = np.random.default_rng(0).normal(size=(1200, 1500)) * scales
    c2, r2 = E.pca(wide, 2, device="cpu")  # the randomised path
    ref2 = PCA(2).fit(wide)
    np.testing.assert_allclose(r2, ref2.explained_variance_ratio_, rtol=1e-3)


def test_pca_of_big_inputs_runs_in_float32_and_leaves_the_input_alone(monkeypatch):
    X = load_digits().data.astype(np.float32)
    before = X.copy()
    monkeypatch.setattr(E, "PCA_FLOAT64_MAX", 1000)  # the digits count as big here
    monkeypatch.setattr(E, "_NORM_BLOCK_VALUES", 640)  # total variance over 180 blocks of 10 rows
    coords, ratio = E.pca(X, 3, device="cpu")
    ref = PCA(3).fit(X.astype(np.float64))
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-3)
    ref_coords = ref.transform(X)
    for j in range(3):  # up to sign
        sign = np.sign(coords[:, j] @ ref_coords[:, j])
        np.testing.assert_allclose(sign * coords[:, j], ref_coords[:, j], atol=2e-3)
    np.testing.assert_array_equal(X, before)  # centred on a copy, not in the caller's array


def test_layer_features_and_metrics(tiny_vit):
    lenet = nn.Sequential()
    lenet.add_module("conv1", nn.Conv2d(1, 4, 3))
    lenet.add_module("relu1", nn.ReLU())
    lenet.add_module("flatten", nn.Flatten())
    lenet.add_module("fc1", nn.Linear(4 * 14 * 14, 8))
    lenet.add_module("relu2", nn.ReLU())
    lenet.add_module("fc2", nn.Linear(8, 3))
    assert E.embedding_layers(lenet) == ["input", "relu1", "relu2"]
    images = torch.randn(10, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    calls = []
    feats = E.layer_features(lenet.eval(), images, ["input", "relu1", "relu2"], batch_size=4,
                             progress=lambda d, t: calls.append((d, t)))  # fmt: skip
    assert {k: v.shape for k, v in feats.items()} == {
        "input": (10, 256), "relu1": (10, 784), "relu2": (10, 8)
    }  # fmt: skip
    assert calls == [(4, 10), (8, 10), (10, 10)]
    np.testing.assert_allclose(feats["relu2"], lenet[:5](images).detach().numpy(), atol=1e-6)

    assert E.embedding_layers(tiny_vit) == ["input", "blocks.0", "blocks.1", "norm"]
    vfeats = E.layer_features(tiny_vit, images, ["blocks.1", "norm"])
    tokens = tiny_vit.forward_features(images)[0]  # (B, T, D)
    np.testing.assert_allclose(vfeats["norm"], tokens[:, 0].detach().numpy(), atol=1e-5)
    assert not tiny_vit._forward_hooks and not tiny_vit.blocks[1]._forward_hooks

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    F = rng.normal(size=(100, 5)) + labels[:, None] * 6
    m = E.layer_metrics(F, F[:, :2], labels)
    assert m["knn_original"] == 1.0 and m["linear_probe"] == 1.0
    assert 0.5 < m["trustworthiness"] <= 1.0
    noise = E.layer_metrics(rng.normal(size=(100, 5)), rng.normal(size=(100, 2)), labels)
    assert noise["knn_map"] < 0.8
    assert m["points"] == noise["points"] == 100


def test_layer_metrics_score_a_random_subset_of_many_points():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(3000, n_features=8, centers=4, cluster_std=4.0, random_state=0)
    coords = X[:, :2]
    full = E.layer_metrics(X, coords, y, max_points=None)
    part = E.layer_metrics(X, coords, y, max_points=1000)
    assert full["points"] == 3000 and part["points"] == 1000
    for key in ("knn_original", "knn_map", "linear_probe"):
        assert abs(part[key] - full[key]) < 0.05, key  # an estimate of the same accuracy
    assert part != E.layer_metrics(X, coords, y, max_points=1000, seed=3)  # a different subset
    with pytest.raises(ValueError, match="labels"):
        E.layer_metrics(X, coords, y[:-1])


@pytest.mark.slow
def test_digits_quality_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    ours = E.tsne(X, perplexity=30.0, n_iter=1000, device="cpu")
    ref = TSNE(perplexity=30.0, max_iter=1000, random_state=0).fit_transform(X)
    t_ours = trustworthiness(X, ours, n_neighbors=10)
    t_ref = trustworthiness(X, ref, n_neighbors=10)
    knn = lambda Y: cross_val_score(KNeighborsClassifier(5), Y, y, cv=5).mean()  # noqa: E731
    assert t_ours >= t_ref - 0.01, (t_ours, t_ref)
    assert knn(ours) >= knn(ref) - 0.02


@pytest.mark.gpu
def test_cuda_matches_cpu_quality_and_is_deterministic():
    X, y = load_digits(return_X_y=True)
    cpu = E.tsne(X, device="cpu", method="fft", n_iter=500)
    gpu_a = E.tsne(X, device="cuda", method="fft", n_iter=500)
    gpu_b = E.tsne(X, device="cuda", method="fft", n_iter=500)
    np.testing.assert_array_equal(gpu_a, gpu_b)
    exact_a = E.tsne(X, device="cuda", method="exact", n_iter=300)
    exact_b = E.tsne(X, device="cuda", method="exact", n_iter=300)
    np.testing.assert_array_equal(exact_a, exact_b)
    t_cpu = trustworthiness(X, cpu, n_neighbors=10)
    t_gpu = trustworthiness(X, gpu_a, n_neighbors=10)
    assert t_gpu >= t_cpu - 0.01
    knn = lambda Y: cross_val_score(KNeighborsClassifier(5), Y, y, cv=5).mean()  # noqa: E731
    assert knn(gpu_a) >= knn(cpu) - 0.02
    coords, ratio = E.pca(X, 2, device="cuda")
    np.testing.assert_allclose(ratio, E.pca(X, 2, device="cpu")[1], rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_cuda_graph_replays_equal_eager_steps(method):
    # Every step after a shape's first is a graph replay, and it moves the map exactly as
    # launching the same kernels one by one does (stale grid inputs or outputs would not).
    X = load_digits().data.astype(np.float32)
    P = E._joint_p(torch.from_numpy(X).cuda(), 30.0)
    start = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(0)) * 1e-4
    runs = {}
    for graphs in (True, False):
        opt = E._Optimiser(start.cuda(), P, method, lr=150.0, cuda_graphs=graphs)
        kls = []
        for it in range(400):
            if it == E.EXPLORATION_ITERS:
                opt.restart()
            exploring = it < E.EXPLORATION_ITERS
            Z, edges = opt.step(12.0 if exploring else 1.0, 0.5 if exploring else 0.8)
            if it % 50 == 49:
                kls.append(E._kl(P, edges, Z))
        runs[graphs] = (opt, opt.Y.cpu().numpy(), kls)
    opt, graphed, kl_graphed = runs[True]
    assert opt.graph_error is None
    assert len(opt._graphs) >= 2 and opt.replays == 400 - len(opt._graphs)
    eager = runs[False][1]
    span = float(np.ptp(eager, axis=0).max())
    np.testing.assert_allclose(graphed, eager, rtol=0, atol=1e-4 * span)
    np.testing.assert_allclose(kl_graphed, runs[False][2], rtol=1e-5)


def test_pca_dims_is_tsne_of_the_principal_components():
    X = load_digits().data[:300]  # (300, 64)
    kwargs = {"n_iter": 120, "seed": 3, "device": "cpu"}
    reduced = E.tsne(X, pca_dims=20, **kwargs)
    by_hand = E.tsne(E.pca(X, 20, device="cpu", seed=3)[0], **kwargs)
    np.testing.assert_array_equal(reduced, by_hand)
    # no wider than asked: the features are used as they are
    np.testing.assert_array_equal(E.tsne(X, pca_dims=64, **kwargs), E.tsne(X, **kwargs))
    assert not np.array_equal(reduced, E.tsne(X, **kwargs))
    for bad in (1, 0, 2.5, "50"):
        with pytest.raises(ValueError, match="pca_dims"):
            E.tsne(X, pca_dims=bad, **kwargs)


def _threads_seen_around(monkeypatch, per_thread: bool) -> dict[str, int]:
    """Run E._torch_threads(1) in two overlapping worker threads; return the thread counts seen."""
    import threading

    monkeypatch.setattr(E, "_threads_per_thread", lambda: per_thread)
    start = torch.get_num_threads()
    seen: dict[str, int] = {}
    inside, leave_a = threading.Barrier(3), threading.Event()

    def run(name: str, leave: threading.Event | None) -> None:
        torch.set_num_threads(3)  # each worker's own setting, whatever the machine's cores
        with E._torch_threads(1):
            seen[f"{name} inside"] = torch.get_num_threads()
            inside.wait()
            if leave is not None:
                leave.wait()
        seen[f"{name} after"] = torch.get_num_threads()

    a = threading.Thread(target=run, args=("a", leave_a))
    b = threading.Thread(target=run, args=("b", None))
    a.start(), b.start()
    inside.wait()  # both runs inside at once
    seen["main during"] = torch.get_num_threads()
    b.join()  # b leaves first, while a is still inside
    leave_a.set()
    a.join()
    seen["main after"] = torch.get_num_threads()
    torch.set_num_threads(start)
    return {**seen, "start": start}


@pytest.mark.skipif(not E._threads_per_thread(), reason="torch's thread count is process-wide here")
def test_one_thread_tsne_leaves_other_threads_alone():
    """OpenMP backend: the t-SNE run's one thread is its own; the app's other sessions keep
    theirs, and each run's thread is restored even when runs overlap."""
    with pytest.MonkeyPatch.context() as mp:
        seen = _threads_seen_around(mp, per_thread=True)
    assert seen["a inside"] == seen["b inside"] == 1
    assert seen["main during"] == seen["main after"] == seen["start"]
    assert seen["a after"] == seen["b after"] == 3  # b left first and still got its own back


def test_process_wide_thread_setting_is_restored_when_the_last_run_leaves(monkeypatch):
    """A backend whose setting is process-wide (simulated by treating it so): overlapping runs
    share one saved value, restored once the last run leaves."""
    seen = _threads_seen_around(monkeypatch, per_thread=False)
    assert seen["a inside"] == seen["b inside"] == 1
    assert seen["a after"] == 3  # the last run to leave restored the saved value
