"""Filters, their display scaling, norms, histograms and top-activating images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.test_device import MetaAsGPU
from vizlib.filters import (
    channel_scores,
    conv_filters,
    conv_layer_names,
    feature_maps,
    filter_norms,
    filter_slices,
    normalize_filters,
    top_activating,
    untrained_model,
    weight_histogram,
    weight_histograms,
)
from vizlib.models import LeNetLike


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    net = LeNetLike().eval().requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    yield net
    assert all(len(m._forward_hooks) == 0 for m in net.modules())
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_conv_filters_shape_and_values_are_a_copy(lenet):
    assert conv_layer_names(lenet) == ["conv1", "conv2"]
    w = conv_filters(lenet, "conv2")
    assert w.shape == (64, 32, 5, 5)
    torch.testing.assert_close(w, lenet.conv2.weight)
    w.zero_()
    assert lenet.conv2.weight.abs().sum() > 0


def test_conv_filters_rejects_non_conv_layers(lenet):
    with pytest.raises(ValueError, match="conv layers: conv1, conv2"):
        conv_filters(lenet, "fc1")
    with pytest.raises(ValueError, match="not a layer"):
        conv_filters(lenet, "nope")


def test_normalize_filters_by_hand():
    w = torch.tensor([[[[0.0, 2.0]]], [[[-1.0, 1.0]]], [[[3.0, 3.0]]]])  # (3, 1, 1, 2)
    per = normalize_filters(w)
    torch.testing.assert_close(per[:, 0, 0], torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.5, 0.5]]))
    shared = normalize_filters(w, shared=True)  # range [-1, 3]
    torch.testing.assert_close(
        shared[:, 0, 0], torch.tensor([[0.25, 0.75], [0.0, 0.5], [1.0, 1.0]])
    )


def test_filter_slices_and_norms_by_hand():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert filter_slices(w, 1).shape == (3, 2, 2)
    torch.testing.assert_close(filter_slices(w, 1, mean=True)[0], w[1].mean(0))
    torch.testing.assert_close(filter_norms(w), torch.sqrt((w**2).sum((1, 2, 3))))
    assert filter_norms(torch.ones(1, 1, 3, 3)).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        filter_slices(w, 2)


def test_weight_histograms_count_every_weight(lenet):
    hists = weight_histograms(lenet, bins=20)
    assert list(hists) == ["conv1", "conv2"]
    counts, edges = hists["conv2"]
    assert counts.sum() == 64 * 32 * 25 and edges.shape == (21,)
    expected, _ = np.histogram(lenet.conv2.weight.numpy().ravel(), bins=20)
    np.testing.assert_array_equal(counts, expected)
    with pytest.raises(ValueError):
        weight_histogram(torch.tensor([[float("nan")]]))


def test_weight_histogram_on_a_given_range_shares_the_bins():
    small = torch.tensor([0.0, 0.1, 0.2, 0.3])
    counts, edges = weight_histogram(small, bins=4, value_range=(-1.0, 1.0))
    np.testing.assert_allclose(edges, [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(counts, [0, 0, 4, 0])  # all four in [0, 0.5)
    own_counts, own_edges = weight_histogram(small, bins=4)  # default: the values' own span
    assert own_edges[0] == 0.0 and own_edges[-1] == pytest.approx(0.3)
    np.testing.assert_array_equal(own_counts, [1, 1, 1, 1])


def test_feature_maps_match_direct_convolution(lenet):
    x = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(0))
    maps = feature_maps(lenet, x, "conv1")
    assert maps.shape == (32, 24, 24)
    torch.testing.assert_close(maps, F.conv2d(x[None], lenet.conv1.weight, lenet.conv1.bias)[0])


def test_channel_scores_and_top_activating_against_direct_computation(lenet):
    x = torch.randn(50, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    direct = F.conv2d(x, lenet.conv1.weight, lenet.conv1.bias)  # (50, 32, 24, 24)
    scores = channel_scores(lenet, x, "conv1", batch_size=16)
    torch.testing.assert_close(scores, direct.mean((2, 3)))
    torch.testing.assert_close(channel_scores(lenet, x, "conv1", reduce="max"), direct.amax((2, 3)))
    idx, vals = top_activating(scores, 5, k=4)
    expected = torch.argsort(direct.mean((2, 3))[:, 5], descending=True)[:4]
    np.testing.assert_array_equal(idx, expected.numpy())
    assert np.all(np.diff(vals) <= 0)
    assert channel_scores(lenet, x[:3], "fc1").shape == (3, 200)


def test_top_activating_by_hand():
    scores = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])
    idx, vals = top_activating(scores, 0, k=2)
    assert idx.tolist() == [1, 2] and vals.tolist() == [3.0, 2.0]
    with pytest.raises(ValueError):
        top_activating(scores, 2)


def test_untrained_model_of_same_architecture_gives_different_filters(lenet):
    torch.manual_seed(123)
    fresh = LeNetLike().eval()
    assert not torch.equal(conv_filters(fresh, "conv1"), conv_filters(lenet, "conv1"))
    assert conv_filters(fresh, "conv1").shape == conv_filters(lenet, "conv1").shape


def test_rgb_first_layer_of_a_three_channel_model():
    net = nn.Sequential(nn.Conv2d(3, 8, 11, stride=4))
    w = normalize_filters(conv_filters(net, "0"))
    assert w.shape == (8, 3, 11, 11) and float(w.min()) == 0.0 and float(w.max()) == 1.0


def test_untrained_model_reproduces_the_seeded_initialisation():
    meta = {"architecture": "lenet", "config": {}, "seed": 7, "source": "checkpoint"}
    state = torch.get_rng_state()
    fresh = untrained_model(meta)
    assert torch.equal(torch.get_rng_state(), state)  # caller's random stream untouched
    torch.manual_seed(7)
    expected = LeNetLike()
    torch.testing.assert_close(conv_filters(fresh, "conv1"), expected.conv1.weight.detach())
    other = untrained_model({**meta, "seed": 8})
    assert not torch.equal(conv_filters(other, "conv1"), conv_filters(fresh, "conv1"))


def test_mosaic_places_tiles_row_by_row():
    from vizlib.plots.filters import mosaic, plot_image_grid

    tiles = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    grid, index = mosaic(tiles, cols=2, pad=1, pad_value=-1)
    assert grid.shape == (5, 5)
    np.testing.assert_array_equal(grid[3:5, 0:2], tiles[2])
    assert index[0, 3] == 1 and index[2, 2] == -1 and grid[2, 2] == -1
    fig = plot_image_grid(np.ones((3, 3, 4, 4)) * 0.5, hover=["a", "b", "c"])
    assert fig.data[0].hovertext[0][0] == "a"
    # the tiles opaque, the gutters and the empty fourth cell see-through (the page shows)
    z, (_, index) = fig.data[0].z, mosaic(np.ones((3, 4, 4)))
    assert fig.data[0].colormodel == "rgba" and list(fig.data[0].zmax) == [255] * 4
    np.testing.assert_array_equal(z[..., 3], np.where(index >= 0, 255, 0))
    np.testing.assert_array_equal(z[index >= 0][:, :3], 128)  # 0.5 grey


def test_captioned_images_show_each_caption_under_its_own_image():
    from vizlib.plots.filters import plot_captioned_images

    rng = np.random.default_rng(0)
    tiles = rng.uniform(size=(7, 1, 8, 8))  # 7 digits: 3 columns, 3 rows
    captions = [[f"class {i}", f"mean {i / 10:.3g}"] for i in range(7)]
    captions[6][0] = "a very long class name"
    fig = plot_captioned_images(tiles, captions, hover=[f"image {i}" for i in range(7)], cols=3)
    assert [t.type for t in fig.data] == ["image"] * 7
    np.testing.assert_array_equal(fig.data[4].z[..., 0], np.round(tiles[4, 0] * 255))
    assert fig.data[4].hovertemplate.startswith("image 4")
    notes = fig.layout.annotations
    assert all(n.font.size >= 12 for n in notes)  # legible on a projector; 10 px was not
    assert [n.text for n in notes[:6]] == [f"class {i}<br>mean {i / 10:.3g}" for i in range(6)]
    assert notes[6].text.startswith("a very long cla") and notes[6].text.split("<br>")[0][-1] == "…"
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    for i, note in enumerate(notes):
        r, c = divmod(i, 3)
        axes = fig.get_subplot(r + 1, c + 1)
        # centred under its own image, hanging from the bottom of its subplot
        assert note.x == pytest.approx(sum(axes.xaxis.domain) / 2)
        assert note.y == axes.yaxis.domain[0] and note.yanchor == "top"
        # two lines of text fit before the next row starts (or inside the bottom margin)
        room = fig.layout.margin.b if r == 2 else (
            note.y - fig.get_subplot(r + 2, c + 1).yaxis.domain[1]
        ) * plot_px  # fmt: skip
        assert room >= 2 * 1.3 * note.font.size
    with pytest.raises(ValueError, match="7 tiles need 7 captions"):
        plot_captioned_images(tiles, captions[:6])


def test_feature_map_colours_per_map_or_in_shared_activation_units():
    from vizlib.plots.filters import plot_feature_maps

    maps = np.stack([np.full((2, 2), 1.0), np.arange(4.0).reshape(2, 2) * 10])  # (2, 2, 2)
    fig = plot_feature_maps(maps, cols=2, channel_labels=["edges", "blobs"])
    *heatmaps, scale = fig.data
    # each map holds its raw activations, placed side by side with one empty cell between
    assert [(t.x0, t.y0) for t in heatmaps] == [(0, 0), (3, 0)]
    np.testing.assert_allclose(heatmaps[1].z, maps[1])
    assert "blobs" in heatmaps[1].hovertemplate and "%{z:.4g}" in heatmaps[1].hovertemplate
    # coloured from its own minimum to maximum; a constant map takes the bottom colour
    assert [(t.zmin, t.zmax) for t in heatmaps] == [(1.0, 2.0), (0.0, 30.0)]
    assert (scale.marker.cmin, scale.marker.cmax) == (0.0, 1.0)
    assert "scaled per map" in scale.marker.colorbar.title.text
    assert not any(t.showscale for t in heatmaps)  # one colour bar for all
    shared = plot_feature_maps(maps, cols=2, shared_scale=True)
    # one range in raw units: the colourbar reads activations, not 0 to 1
    assert [(t.zmin, t.zmax) for t in shared.data[:2]] == [(0.0, 30.0), (0.0, 30.0)]
    assert (shared.data[2].marker.cmin, shared.data[2].marker.cmax) == (0.0, 30.0)
    assert shared.data[2].marker.colorbar.title.text == "activation"


def test_feature_maps_carry_each_activation_once():
    """No text or second copy per cell: vgg16's 64 maps of 224x224 made an 80 MB figure with
    them (4.3 times the float32 activations in base64, 4/3 bytes a byte); now the figure is
    those activations plus plotly's escapes (it writes each '/' as 6 characters)."""
    from vizlib.plots.filters import plot_feature_maps

    maps = np.random.default_rng(0).normal(size=(64, 56, 56)).astype(np.float32)
    size = len(plot_feature_maps(maps).to_json())
    assert size < 1.5 * maps.nbytes * 4 / 3


def test_filters_and_scores_of_a_model_on_the_gpu_come_back_to_the_cpu():
    """The meta device as a GPU: weights, maps and scores come back to the CPU (numpy needs
    them there), scores given on the device included; nothing is read on the device."""
    torch.manual_seed(0)
    gpu = LeNetLike().eval().requires_grad_(False).to("meta")
    images = torch.randn(5, 1, 28, 28)
    with MetaAsGPU() as mode:
        weights = conv_filters(gpu, "conv2")
        counts, edges = weight_histogram(conv_filters(gpu, "conv1"), bins=4)
        maps = feature_maps(gpu, images[0], "conv1")
        scores = channel_scores(gpu, images, "conv2", batch_size=2)
        order, values = top_activating(scores.to("meta"), 3, k=2)
    assert weights.device.type == "cpu" and weights.shape == (64, 32, 5, 5)
    assert counts.sum() == 32 * 25 and edges.shape == (5,)
    assert maps.device.type == "cpu" and maps.shape == (32, 24, 24)
    assert scores.device.type == "cpu" and scores.shape == (5, 64)
    assert order.shape == values.shape == (2,)
    assert "conv2d" in mode.device_ops and mode.host_reads == 0


def test_small_filters_are_drawn_large_enough_to_see():
    from vizlib.plots.filters import plot_image_grid

    # 32 filters of 3x3 (resnet_digits): a 6x6 mosaic of 23 cells a side; at 12 px a cell the
    # filters were 36 px wide at 1500 px, hard to see on a projector
    fig = plot_image_grid(np.full((32, 1, 3, 3), 0.5), max_px=560)
    cell_px = (fig.layout.height - 70) / 23
    assert cell_px >= 23.9
    big = plot_image_grid(np.full((64, 3, 11, 11), 0.5), max_px=560)  # alexnet: max_px rules
    assert big.layout.height - 70 <= 560


def test_feature_maps_larger_than_the_plot_shrink_to_it():
    from vizlib.plots.filters import plot_feature_maps

    # resnet18's conv1: 64 maps of 112x112, a mosaic of 903 cells a side
    fig = plot_feature_maps(np.zeros((64, 112, 112), np.float32), max_px=640)
    assert fig.layout.height - 70 == 640


def test_feature_map_pool_is_the_smallest_block_that_fits_the_plot():
    from vizlib.plots.filters import _tiling, feature_map_pool

    # vgg16's first layer: 64 maps of 224x224 tile 8 x 8 into 1,799 cells a side; blocks of 3
    # make maps of 75 and a grid of 607, blocks of 2 a grid of 903
    assert feature_map_pool((64, 224, 224), max_px=640) == 3
    assert feature_map_pool((64, 112, 112), max_px=640) == 2  # resnet18's conv1
    assert feature_map_pool((4, 224, 224), max_px=640) == 1  # a 2 x 2 grid of 449 fits
    assert feature_map_pool((32, 24, 24), max_px=640) == 1  # lenet_digits: never pooled

    def side(shape: tuple[int, int, int], k: int) -> int:  # the pooled grid's longer side
        n, h, w = shape
        return max(_tiling(n, -(-h // k), -(-w // k), cols=None, pad=1)[1])

    for shape in [(64, 224, 224), (512, 14, 14), (3, 1000, 10), (1, 5000, 5000)]:
        k = feature_map_pool(shape, max_px=640)
        assert side(shape, k) <= 640 and (k == 1 or side(shape, k - 1) > 640)


def test_pooled_feature_maps_hold_block_means():
    from vizlib.plots.filters import plot_feature_maps

    maps = np.random.default_rng(1).normal(size=(5, 12, 12)).astype(np.float32)
    fig = plot_feature_maps(maps, pool=3)
    pooled = F.avg_pool2d(torch.from_numpy(maps), 3).numpy()  # (5, 4, 4): torch's own pooling
    for i, trace in enumerate(fig.data[:5]):
        np.testing.assert_allclose(np.asarray(trace.z), pooled[i], rtol=1e-5, atol=1e-6)
        assert "mean of 3×3 activations" in trace.hovertemplate
        # each map coloured from its own pooled minimum to maximum
        assert (trace.zmin, trace.zmax) == pytest.approx((pooled[i].min(), pooled[i].max()))
    # a block cut by the edge averages the cells it has: 5 columns in blocks of 2
    edge = np.array([[[1.0, 3.0, 5.0, 7.0, 9.0], [1.0, 3.0, 5.0, 7.0, 11.0]]])  # (1, 2, 5)
    np.testing.assert_allclose(plot_feature_maps(edge, pool=2).data[0].z, [[2.0, 6.0, 10.0]])
    nan = plot_feature_maps(np.array([[[np.nan, 1.0], [1.0, 1.0]]]), pool=2).data[0].z
    assert np.isnan(nan).all()  # a NaN activation is not averaged away
    with pytest.raises(ValueError, match="pool"):
        plot_feature_maps(maps, pool=0)


def test_feature_maps_drawn_at_screen_resolution_send_a_fraction_of_the_data():
    """vgg16's first layer sent 19 MB a run for a figure 640 px wide: pooled to fit, a ninth."""
    from vizlib.plots.filters import feature_map_pool, plot_feature_maps

    maps = np.random.default_rng(0).normal(size=(64, 224, 224)).astype(np.float32)
    pool = feature_map_pool(maps.shape, max_px=640)
    pooled = plot_feature_maps(maps, pool=pool)
    assert len(pooled.to_json()) < 1.5 * 64 * 75 * 75 * 4 * 4 / 3  # 64 maps of 75x75 float32
    assert pooled.layout.height - 70 <= 640


def test_filter_tiles_are_rgb_grey_or_the_mean_over_input_channels():
    from vizlib.filters import filter_tiles, normalize_filters

    w = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.from_numpy(filter_tiles(w)), normalize_filters(w))
    deep = torch.randn(6, 32, 3, 3, generator=torch.Generator().manual_seed(1))
    tiles = filter_tiles(deep, shared=True)  # (6, 1, 3, 3): the mean slice, one range
    assert tiles.shape == (6, 1, 3, 3) and tiles.min() == 0.0 and tiles.max() == 1.0
    mean = deep.mean(dim=1, keepdim=True)
    torch.testing.assert_close(
        torch.from_numpy(tiles), (mean - mean.min()) / (mean.max() - mean.min())
    )


def test_aligned_numbers_share_the_decimals_of_the_largest():
    from vizlib.plots import aligned_numbers

    assert aligned_numbers([0.03299, 0.009517, 0.009159]) == ["0.03299", "0.00952", "0.00916"]
    assert aligned_numbers([-12.345, 1.0]) == ["-12.35", "1.00"]  # by size, sign aside
    assert aligned_numbers([12345.6, 7.0]) == ["12346", "7"]  # no decimals past the whole part
    assert aligned_numbers([0.0, 0.0]) == ["0.000", "0.000"]
    assert aligned_numbers([float("nan"), 0.5]) == ["nan", "0.5000"]
