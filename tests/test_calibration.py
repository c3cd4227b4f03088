"""vizlib.calibration against scikit-learn, scipy, torch and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, optimize
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from vizlib import calibration
from vizlib.calibration import (
    TEMPERATURE_BOUNDS,
    class_logits,
    class_scores,
    corrupt_images,
    coverage_curve,
    cross_fitted_temperatures,
    fit_temperature,
    match_classes,
    negative_log_likelihood,
    reliability,
    top_k_accuracy,
)


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """The mean NLL of softmax(z / t), written out with scipy's logsumexp."""
    from scipy.special import logsumexp

    return float((logsumexp(z / t, axis=1) - z[np.arange(len(z)), y] / t).mean())


def _sampled(n: int, k: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n, k) and labels drawn from softmax(logits / temperature): a model whose best
    temperature is ``temperature``."""
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal((n, k))
    p = np.exp(z / temperature)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


# ------------------------------------------------------------------------ reliability and ECE


def test_the_bins_are_scikit_learns_calibration_curve():
    """Top-label confidence and correctness are a binary problem: sklearn's uniform bins (also
    closed on the right) give the same accuracy and mean confidence in every non-empty bin,
    confidences on the edges included."""
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.uniform(0.1, 1.0, 500), [0.2, 0.5, 1.0, 0.1 + 1e-12]])
    right = rng.uniform(size=conf.size) < conf**2  # overconfident
    r = reliability(conf, right, n_bins=10)
    prob_true, prob_pred = calibration_curve(right, conf, n_bins=10, strategy="uniform")
    full = r.counts > 0
    np.testing.assert_allclose(r.accuracy[full], prob_true, atol=1e-12)
    np.testing.assert_allclose(r.confidence[full], prob_pred, atol=1e-12)
    assert r.counts.sum() == conf.size and np.isnan(r.accuracy[~full]).all()
    # 0.2 sits on an edge: in the bin (0.1, 0.2], with 0.1 + 1e-12
    assert r.counts[1] == ((conf > 0.1) & (conf <= 0.2)).sum()


def test_ece_and_mce_by_hand():
    """Two answers at 0.95 (one right), two at 0.6 (both right), 10 bins: (0.9, 1] has gap
    0.5 - 0.95 and (0.5, 0.6] has gap 1 - 0.6, each half the answers."""
    r = reliability([0.95, 0.95, 0.6, 0.6], [True, False, True, True], n_bins=10)
    assert r.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.4)
    assert r.mce == pytest.approx(0.45)
    np.testing.assert_allclose(r.gaps[[5, 9]], [0.4, -0.45])
    assert r.counts.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    # a confidence of exactly 0 goes in the first bin, not nowhere
    assert reliability([0.0], [False], n_bins=5).counts.tolist() == [1, 0, 0, 0, 0]


def test_a_calibrated_sample_has_a_small_ece_an_overconfident_one_a_large_one():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.2, 1.0, 20000)
    assert reliability(conf, rng.uniform(size=conf.size) < conf).ece < 0.02
    overconfident = reliability(conf, rng.uniform(size=conf.size) < conf - 0.15)
    assert overconfident.ece == pytest.approx(0.15, abs=0.02)
    assert np.nanmean(overconfident.gaps) < 0


@pytest.mark.parametrize(
    ("conf", "right", "match"),
    [
        ([0.5, 1.2], [True, False], r"\[0, 1\]"),
        ([0.5, np.nan], [True, False], r"\[0, 1\]"),
        ([0.5, 0.6], [True], "alike"),
    ],
)
def test_bad_confidences_are_refused(conf, right, match):
    with pytest.raises(ValueError, match=match):
        reliability(conf, right)


# ------------------------------------------------------------------- likelihood and temperature


def test_the_nll_is_torchs_cross_entropy_with_one_or_many_temperatures():
    z, y = _sampled(300, 7, 1.0, seed=2)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(z / 1.7), torch.from_numpy(y))
    assert negative_log_likelihood(z, y, temperature=1.7) == pytest.approx(float(expected))
    per_image = np.linspace(0.5, 2.0, 300)
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(z / per_image[:, None]), torch.from_numpy(y)
    )
    assert negative_log_likelihood(z, y, temperature=per_image) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="positive"):
        negative_log_likelihood(z, y, temperature=np.ones(3))


def test_the_fitted_temperature_is_scipys_minimum_of_the_nll():
    z, y = _sampled(2000, 10, 1.0, seed=3)
    z = 2.5 * z  # an overconfident model: its best temperature is 2.5
    fitted = fit_temperature(z, y)
    best = optimize.minimize_scalar(
        lambda log_t: _nll(z, y, float(np.exp(log_t))), bounds=(-3, 3), method="bounded",
        options={"xatol": 1e-10},
    )  # fmt: skip
    assert fitted == pytest.approx(float(np.exp(best.x)), rel=1e-5)
    assert fitted == pytest.approx(2.5, rel=0.08)
    assert _nll(z, y, fitted) <= _nll(z, y, fitted * 1.01) and _nll(z, y, fitted) <= _nll(
        z, y, fitted / 1.01
    )


def test_the_temperature_of_a_sampled_model_is_recovered():
    z, y = _sampled(20000, 5, 0.5, seed=4)  # underconfident: labels surer than its logits
    assert fit_temperature(z, y) == pytest.approx(0.5, rel=0.05)


def test_a_fit_that_would_run_away_stops_at_a_bound():
    # every image right by a margin: surer is always better, T -> 0
    z = np.array([[5.0, 0.0], [0.0, 5.0], [3.0, 1.0]])
    assert fit_temperature(z, [0, 1, 0]) == TEMPERATURE_BOUNDS[0]
    # logits that are the same for every class: the temperature changes nothing
    assert fit_temperature(np.zeros((4, 3)), [0, 1, 2, 0]) == TEMPERATURE_BOUNDS[1]
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_temperature(np.array([[np.nan, 0.0]]), [0])


def test_each_image_gets_the_temperature_fitted_without_it():
    z, y = _sampled(400, 6, 2.0, seed=5)
    per_image, per_fold = cross_fitted_temperatures(z, y, folds=2, seed=0)
    assert set(np.unique(per_image)) == set(per_fold)
    for t in per_fold:
        mine = per_image == t
        assert fit_temperature(z[~mine], y[~mine]) == pytest.approx(t)
        assert abs(mine.sum() - 200) <= 1  # near-equal folds
    # changing the labels of one fold's images leaves their own temperature alone
    fold0 = per_image == per_fold[0]
    y2 = y.copy()
    y2[fold0] = (y2[fold0] + 1) % 6
    again, _ = cross_fitted_temperatures(z, y2, folds=2, seed=0)
    np.testing.assert_array_equal(again[fold0], per_image[fold0])
    assert not np.allclose(again[~fold0], per_image[~fold0])
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_temperatures(z[:1], y[:1])


# --------------------------------------------------------------------- selective answers, scores


def test_the_coverage_curve_is_a_loop_over_thresholds():
    rng = np.random.default_rng(6)
    conf = rng.choice([0.3, 0.5, 0.7, 0.9, 0.95], 60)  # ties, broken by index
    right = rng.uniform(size=60) < conf
    cover, acc, thr = coverage_curve(conf, right)
    order = sorted(range(60), key=lambda i: (-conf[i], i))
    for k in range(1, 61):
        kept = order[:k]
        assert cover[k - 1] == pytest.approx(k / 60)
        assert acc[k - 1] == pytest.approx(right[kept].mean())
        assert thr[k - 1] == conf[kept].min()


def test_top_k_accuracy_is_scikit_learns():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((200, 8))
    y = rng.integers(0, 8, 200)
    for k in (1, 3, 7):
        expected = top_k_accuracy_score(y, z, k=k, labels=np.arange(8))
        assert top_k_accuracy(z, y, k) == pytest.approx(expected)
    with pytest.raises(ValueError, match="between 1 and the 8"):
        top_k_accuracy(z, y, 9)


def test_class_scores_are_scikit_learns():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 5, 300)
    y[y == 4] = 3  # class 4 has no images...
    pred = np.where(rng.uniform(size=300) < 0.7, y, rng.integers(0, 6, 300)) % 6
    pred[pred == 2] = 1  # ...and class 2 is never answered
    scores = class_scores(y, pred, num_classes=6)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=np.arange(6), zero_division=np.nan)
    np.testing.assert_array_equal(scores["support"], s)
    np.testing.assert_allclose(scores["precision"], p, equal_nan=True)
    np.testing.assert_allclose(scores["recall"], r, equal_nan=True)
    both = ~np.isnan(p) & ~np.isnan(r)
    np.testing.assert_allclose(scores["f1"][both], f[both])
    assert scores["f1"][2] == 0.0  # images, never answered: F1 is 0, precision undefined
    assert np.isnan(scores["precision"][2]) and np.isnan(scores["recall"][4])
    assert scores["predicted"].tolist() == np.bincount(pred, minlength=6).tolist()


def test_folder_classes_match_model_classes_by_name():
    model = ["tench", "great white shark", "crane", "golden retriever", "crane"]
    got = match_classes(["Golden_Retriever", "great-white  shark", "cat", "crane"], model)
    assert got.tolist() == [3, 1, -1, 2]


# ------------------------------------------------------------------------ the model's answers


def test_class_logits_are_the_models_output_in_batches_and_touch_nothing():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 5)
    ).eval()
    x = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    logits = class_logits(model, x, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    with torch.no_grad():
        np.testing.assert_allclose(logits.numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert not model.training and not model._forward_hooks
    stopped = class_logits(model, x, batch_size=4, progress=lambda d, t: False)
    assert stopped.shape[0] == 4
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        class_logits(model, x[0])


def test_class_logits_refuse_a_model_that_is_not_a_classifier():
    with pytest.raises(ValueError, match="classifier"):
        class_logits(torch.nn.Identity(), torch.zeros(2, 1, 4, 4))


# --------------------------------------------------------------------------------- the shifts

MEAN, STD = [0.3], [0.3]


def _pixels(x: torch.Tensor) -> np.ndarray:
    return (x * STD[0] + MEAN[0]).numpy()


def test_no_shift_returns_the_images_and_a_quarter_turn_is_rot90():
    pixels = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    x = (pixels - MEAN[0]) / STD[0]
    assert corrupt_images(x, mean=MEAN, std=STD) is x
    turned = corrupt_images(x, mean=MEAN, std=STD, rotation=90)
    np.testing.assert_allclose(_pixels(turned), torch.rot90(pixels, 1, (-2, -1)), atol=1e-5)


def test_the_blur_is_scipys_gaussian_filter():
    pixels = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(2))
    x = (pixels - MEAN[0]) / STD[0]
    blurred = _pixels(corrupt_images(x, mean=MEAN, std=STD, blur=1.5))[0, 0]
    radius = int(np.ceil(3 * 1.5))
    expected = ndimage.gaussian_filter(
        pixels[0, 0].numpy().astype(np.float64), 1.5, mode="mirror", truncate=radius / 1.5
    )
    np.testing.assert_allclose(blurred, expected, atol=1e-5)
    with pytest.raises(ValueError, match="larger than"):
        corrupt_images(x, mean=MEAN, std=STD, blur=7.0)


def test_the_noise_is_seeded_gaussian_and_clipped():
    x = torch.full((4, 1, 32, 32), (0.5 - MEAN[0]) / STD[0])  # mid-grey
    a = corrupt_images(x, mean=MEAN, std=STD, noise=0.1, seed=3)
    assert torch.equal(a, corrupt_images(x, mean=MEAN, std=STD, noise=0.1, seed=3))
    assert not torch.equal(a, corrupt_images(x, mean=MEAN, std=STD, noise=0.1, seed=4))
    assert np.std(_pixels(a) - 0.5) == pytest.approx(0.1, rel=0.05)
    loud = _pixels(corrupt_images(x, mean=MEAN, std=STD, noise=2.0))
    assert loud.min() >= -1e-6 and loud.max() <= 1 + 1e-6
    assert np.isclose(loud, 0, atol=1e-6).mean() > 0.3  # many clipped to black


@pytest.mark.parametrize(
    "kwargs", [{"rotation": 400}, {"blur": -1.0}, {"noise": float("nan")}, {"noise": 11.0}]
)
def test_impossible_shifts_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be a number between"):
        corrupt_images(torch.zeros(1, 1, 8, 8), mean=MEAN, std=STD, **kwargs)


def test_the_module_is_reachable_from_the_top():
    import vizlib

    assert vizlib.fit_temperature is calibration.fit_temperature


@pytest.mark.gpu
def test_the_gpu_gives_the_cpus_answers_and_shifts():
    """A model on the GPU fed CPU images: the logits come back on the CPU, equal to the CPU's;
    the shifts of images on the GPU equal those on the CPU (the noise drawn on the CPU)."""
    from vizlib import zoo
    from vizlib.data import load_dataset

    model, meta = zoo.load_model("resnet_digits", device="cpu")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    cpu = class_logits(model, images[:64], batch_size=16)
    gpu_model, _ = zoo.load_model("resnet_digits", device="cuda")
    gpu = class_logits(gpu_model, images[:64], batch_size=16)
    assert gpu.device.type == "cpu"
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-3, atol=1e-3)
    shift = {"mean": meta["mean"], "std": meta["std"], "rotation": 15, "blur": 1.0, "noise": 0.2}
    on_gpu = corrupt_images(images[:8].cuda(), **shift)
    np.testing.assert_allclose(on_gpu.cpu().numpy(), corrupt_images(images[:8], **shift).numpy(),
                               atol=1e-4)  # fmt: skip


def test_the_summary_is_the_separate_measures():
    z, y = _sampled(500, 10, 2.0, seed=9)
    p = torch.softmax(torch.from_numpy(z), 1).numpy()
    got = calibration.summarize(z, y, n_bins=10)
    assert got["accuracy"] == pytest.approx((p.argmax(1) == y).mean())
    assert got["top5"] == pytest.approx(top_k_accuracy_score(y, z, k=5, labels=np.arange(10)))
    assert got["mean_confidence"] == pytest.approx(p.max(1).mean())
    assert got["ece"] == pytest.approx(reliability(p.max(1), p.argmax(1) == y, n_bins=10).ece)
    assert got["temperature"] == pytest.approx(fit_temperature(z, y))
    assert got["nll"] == pytest.approx(_nll(z, y, 1.0))
    assert np.isnan(calibration.summarize(z[:3], y[:3])["temperature"])
