"""Attention probes: hand-built known answers, and captures checked against torch's own attention."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_device import MetaAsGPU, allow_meta, exact_float32
from vizlib import attention
from vizlib.attention import (
    attention_maps,
    attention_rollout,
    cls_attention,
    fuse_heads,
    mean_attention_distance,
    mean_attention_distance_over,
    patch_distances,
    query_attention,
    uniform_attention_distance,
    vit_geometry,
)


def _one_hot_attention(grid, key_of_query, *, prefix=1, heads=1, batch=1):
    """Attention (batch, heads, T, T) where patch query q puts all weight on key_of_query(q)."""
    gh, gw = grid
    n = gh * gw
    t = prefix + n
    attn = torch.zeros(batch, heads, t, t)
    attn[..., :prefix, :] = 1.0 / t  # prefix rows: irrelevant, must be ignored
    for q in range(n):
        attn[..., prefix + q, prefix + key_of_query(q)] = 1.0
    return attn


def test_self_attention_gives_zero_distance():
    attn = _one_hot_attention((4, 4), lambda q: q, heads=3)
    out = mean_attention_distance([attn, attn], (4, 4), 16, num_prefix_tokens=1)
    assert out.shape == (2, 3)
    assert torch.allclose(out, torch.zeros(2, 3))


@pytest.mark.parametrize("k", [1, 3])
def test_weight_k_patches_away_gives_k_times_patch_size(k):
    gh, gw = 4, 6

    # every query looks k columns to the right, wrapping back k columns to the left
    def key(q):
        r, c = divmod(q, gw)
        return r * gw + (c + k if c + k < gw else c - k)

    attn = _one_hot_attention((gh, gw), key, heads=2, batch=2)
    out = mean_attention_distance(attn[None], (gh, gw), 8, num_prefix_tokens=1)
    assert torch.allclose(out, torch.full((1, 2), k * 8.0))


def test_uniform_attention_gives_mean_pairwise_distance():
    gh, gw, p = 3, 4, 10
    n = gh * gw
    attn = torch.full((2, 1, 1 + n, 1 + n), 1.0 / n)
    out = mean_attention_distance([attn], (gh, gw), p)
    coords = list(itertools.product(range(gh), range(gw)))
    by_hand = sum(math.dist(a, b) * p for a in coords for b in coords) / n**2
    assert out.item() == pytest.approx(by_hand, rel=1e-6)
    assert uniform_attention_distance((gh, gw), p) == pytest.approx(by_hand)
    assert uniform_attention_distance((14, 14), 16) == pytest.approx(116.49, abs=0.01)


def test_class_token_excluded_and_renormalize():
    gh, gw = 2, 2
    n = 4
    attn = torch.zeros(1, 1, 1 + n, 1 + n)
    # half of each query's weight on the class token, half on the diagonal neighbour
    attn[..., :, 0] = 0.5
    for q in range(n):
        attn[0, 0, 1 + q, 1 + (3 - q)] = 0.5
    raw = mean_attention_distance([attn], (gh, gw), 16)
    renorm = mean_attention_distance([attn], (gh, gw), 16, renormalize=True)
    assert raw.item() == pytest.approx(0.5 * math.sqrt(2) * 16, rel=1e-6)
    assert renorm.item() == pytest.approx(math.sqrt(2) * 16, rel=1e-6)


def test_patch_distances_match_double_loop():
    dist = patch_distances((3, 2), 4)
    for (i, a), (j, b) in itertools.product(
        enumerate(itertools.product(range(3), range(2))), repeat=2
    ):
        assert dist[i, j].item() == pytest.approx(math.dist(a, b) * 4)


def test_mismatched_token_count_raises():
    attn = torch.full((1, 1, 10, 10), 0.1)
    with pytest.raises(ValueError, match="prefix tokens"):
        mean_attention_distance([attn], (4, 4), 16)


def test_rollout_of_identity_is_uniform_over_patches():
    t = 1 + 9
    eye = torch.eye(t).expand(2, 3, t, t)
    mask = attention_rollout([eye, eye, eye], normalize=False)
    # residual-only attention: the class token keeps all weight on itself, equal (0) on patches
    assert mask.shape == (2, 3, 3)
    assert torch.allclose(mask, torch.zeros_like(mask))
    uniform = torch.full((2, 3, t, t), 1.0 / t)
    mask = attention_rollout([uniform, uniform])
    assert torch.allclose(mask, torch.ones_like(mask))  # uniform, max-normalised to 1


def test_rollout_matches_hand_computation():
    """Two layers, 2x2 grid plus class token, max over two heads, worked out step by step.

    Max fusion makes rows sum to more than 1, so the row renormalisation matters."""
    gen = torch.Generator().manual_seed(1)
    t = 5
    layers = [torch.softmax(torch.randn(1, 2, t, t, generator=gen), dim=-1) for _ in range(2)]
    by_hand = torch.eye(t, dtype=torch.float64)
    for attn in layers:
        a = torch.maximum(attn[0, 0], attn[0, 1]).double()
        a = 0.5 * a + 0.5 * torch.eye(t, dtype=torch.float64)
        rows = [[a[i, j] / sum(a[i, m] for m in range(t)) for j in range(t)] for i in range(t)]
        by_hand = torch.tensor(rows, dtype=torch.float64) @ by_hand
    expected = by_hand[0, 1:].reshape(2, 2)
    mask = attention_rollout(layers, head_fusion="max", normalize=False)
    assert torch.allclose(mask[0].double(), expected, atol=1e-6)
    # a column-wise division (the widely copied bug) gives a different answer here
    a = 0.5 * layers[0][0].amax(0) + 0.5 * torch.eye(t)
    assert not torch.allclose(a / a.sum(-1), a / a.sum(-1, keepdim=True))
    shown = attention_rollout(layers, head_fusion="max")
    assert shown.max().item() == pytest.approx(1.0)
    assert torch.allclose(shown[0], (expected / expected.max()).float(), atol=1e-6)


def _rollout_by_hand(layers, prefix, grid, readout):
    """Mean-fused rollout in NumPy, image by image: class token's row, or the patch rows' mean."""
    import numpy as np

    masks = []
    for b in range(layers[0].shape[0]):
        t = layers[0].shape[-1]
        rolled = np.eye(t)
        for attn in layers:
            a = 0.5 * attn[b].double().numpy().mean(axis=0) + 0.5 * np.eye(t)
            rolled = (a / a.sum(axis=1, keepdims=True)) @ rolled
        if readout == "class":
            row = rolled[0, prefix:]
        else:
            row = np.mean([rolled[i, prefix:] for i in range(prefix, t)], axis=0)
        masks.append(row.reshape(grid))
    return torch.tensor(np.stack(masks), dtype=torch.float32)


@pytest.mark.parametrize("prefix", [0, 1, 5])
def test_rollout_leaves_out_prefix_tokens_and_reads_out_class_or_patches(prefix):
    gen = torch.Generator().manual_seed(3)
    t = prefix + 6
    layers = [torch.softmax(torch.randn(2, 3, t, t, generator=gen), dim=-1) for _ in range(3)]
    if prefix:
        mask = attention_rollout(layers, num_prefix_tokens=prefix, grid_hw=(2, 3), normalize=False)
        assert torch.allclose(mask, _rollout_by_hand(layers, prefix, (2, 3), "class"), atol=1e-6)
    else:
        with pytest.raises(ValueError, match="num_prefix_tokens"):
            attention_rollout(layers, num_prefix_tokens=0, grid_hw=(2, 3))
    pooled = attention_rollout(
        layers, num_prefix_tokens=prefix, grid_hw=(2, 3), normalize=False, readout="patches"
    )
    assert torch.allclose(pooled, _rollout_by_hand(layers, prefix, (2, 3), "patches"), atol=1e-6)
    # every rolled-out row sums to 1 over all tokens; the patches' share is at most that
    assert (pooled.sum(dim=(-2, -1)) <= 1 + 1e-6).all()


def test_cls_attention_refuses_a_model_without_class_token():
    attn = torch.softmax(torch.randn(1, 2, 8, 8), dim=-1)
    with pytest.raises(ValueError, match="no class token"):
        cls_attention([attn], (2, 2), layer=0, num_prefix_tokens=4, has_class_token=False)
    with pytest.raises(ValueError, match="num_prefix_tokens"):
        cls_attention([attn[..., :4, :4]], (2, 2), layer=0, num_prefix_tokens=0)
    # with registers after the class token, token 0 is still the class token
    got = cls_attention([attn], (2, 2), layer=0, head=0, num_prefix_tokens=4)
    assert torch.equal(got, attn[:, 0, 0, 4:].reshape(1, 2, 2))


def test_distance_ignores_register_tokens():
    # four register tokens take 90% of every patch query's weight; the rest goes 1 patch away
    gh, gw, prefix = 2, 2, 5
    attn = torch.zeros(1, 1, prefix + 4, prefix + 4)
    attn[..., :, 1:prefix] = 0.9 / 4
    for q in range(4):
        r, c = divmod(q, gw)
        attn[0, 0, prefix + q, prefix + r * gw + (1 - c)] = 0.1
    raw = mean_attention_distance([attn], (gh, gw), 16, num_prefix_tokens=prefix)
    renorm = mean_attention_distance(
        [attn], (gh, gw), 16, num_prefix_tokens=prefix, renormalize=True
    )
    assert raw.item() == pytest.approx(1.6, rel=1e-6)
    assert renorm.item() == pytest.approx(16.0, rel=1e-6)


def test_rollout_discard_keeps_class_token_entry_and_fusions():
    t = 5
    attn = torch.full((1, 2, t, t), 0.01)
    attn[0, :, 0, 0] = 0.0  # the smallest entry, but must survive the discard
    attn[0, 0, 0, 3] = 0.9
    attn[0, 1, 0, 2] = 0.5
    max_mask = attention_rollout([attn], head_fusion="max", normalize=False)
    min_mask = attention_rollout([attn], head_fusion="min", normalize=False)
    assert max_mask[0].flatten().argmax().item() == 2
    assert min_mask[0].flatten().tolist() == pytest.approx([0.01 / 2 / 0.52] * 4, rel=1e-5)
    discarded = attention_rollout([attn], head_fusion="max", discard_ratio=0.9, normalize=False)
    # 22 of 25 entries zeroed; the kept ones are 0.9, 0.5 (row 0) and one 0.01 elsewhere
    row = discarded[0].flatten()
    assert row[2].item() == pytest.approx(0.9 / 2 / (0.5 + 0.5 * (0.9 + 0.5)))
    assert row[1].item() == pytest.approx(0.5 / 2 / (0.5 + 0.5 * (0.9 + 0.5)))
    assert row[0].item() == 0.0 and row[3].item() == 0.0
    with pytest.raises(ValueError):
        attention_rollout([attn], discard_ratio=1.0)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_of_fused_heads_equals_rollout_of_all_heads(fusion):
    # the page keeps the fused maps (heads times smaller) and rolls them out per discard ratio
    gen = torch.Generator().manual_seed(5)
    maps = [torch.softmax(torch.randn(2, 4, 10, 10, generator=gen), dim=-1) for _ in range(3)]
    fused = fuse_heads(maps, fusion)
    assert fused.shape == (3, 2, 1, 10, 10)
    for discard in (0.0, 0.3):
        kw = {"discard_ratio": discard, "grid_hw": (3, 3)}
        torch.testing.assert_close(
            attention_rollout(fused, head_fusion=fusion, **kw),
            attention_rollout(maps, head_fusion=fusion, **kw),
        )
    with pytest.raises(ValueError, match="head_fusion"):
        fuse_heads(maps, "median")


def test_cls_and_query_maps():
    gen = torch.Generator().manual_seed(2)
    attn = torch.softmax(torch.randn(2, 3, 10, 10, generator=gen), dim=-1)
    cls = cls_attention([attn], (3, 3), layer=0, head=1)
    assert torch.equal(cls, attn[:, 1, 0, 1:].reshape(2, 3, 3))
    q = query_attention([attn], (3, 3), (1, 2), layer=0, head="max")
    assert torch.equal(q, attn[:, :, 1 + 1 * 3 + 2, 1:].amax(1).reshape(2, 3, 3))
    with pytest.raises(ValueError):
        query_attention([attn], (3, 3), (3, 0), layer=0)


def test_our_vit_attention_equals_manual_recomputation(tiny_vit):
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = attention_maps(tiny_vit, x, batch_size=2, device="cpu")
    assert len(maps) == 2 and maps[0].shape == (3, 4, 17, 17)
    with torch.no_grad():
        tokens = tiny_vit.embed(x)
        for block, got in zip(tiny_vit.blocks, maps, strict=True):
            h = block.norm1(tokens)
            qkv = block.attn.qkv(h).reshape(3, 17, 3, 4, 8)
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
            manual = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
            assert torch.allclose(got, manual, atol=1e-6)
            tokens, _ = block(tokens)
    geo = vit_geometry(tiny_vit)
    assert (geo.grid_size, geo.patch_size, geo.num_prefix_tokens) == ((4, 4), 4, 1)
    streamed = mean_attention_distance_over(tiny_vit, x, batch_size=2, device="cpu")
    assert torch.allclose(streamed, mean_attention_distance(maps, (4, 4), 4), atol=1e-5)


def _torchvision_manual(model, x):
    """Per-head weights from nn.MultiheadAttention itself (need_weights=True), block by block."""
    out = []
    with torch.no_grad():
        tokens = model._process_input(x)
        tokens = torch.cat([model.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + model.encoder.pos_embedding
        for block in model.encoder.layers:
            h = block.ln_1(tokens)
            _, w = block.self_attention(h, h, h, need_weights=True, average_attn_weights=False)
            out.append(w)
            tokens = block(tokens)
    return out


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _check_torchvision_capture(model, x, *, check_distance: bool = True):
    with torch.no_grad():
        before = model(x)
    calls = []
    maps = attention_maps(model, x, batch_size=x.shape[0], device="cpu")
    with torch.no_grad():
        after = model(x)
    assert torch.equal(before, after)
    assert _no_hooks(model)
    manual = _torchvision_manual(model, x)
    assert len(maps) == len(manual)
    for got, want in zip(maps, manual, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(got.sum(-1), torch.ones(got.shape[:-1]), atol=1e-5)
    if not check_distance:
        return
    dist = mean_attention_distance_over(
        model, x, batch_size=1, device="cpu", callback=lambda d, t: calls.append((d, t))
    )
    geo = vit_geometry(model)
    assert torch.allclose(
        dist, mean_attention_distance(maps, geo.grid_size, geo.patch_size), rtol=1e-4
    )
    assert calls[-1] == (x.shape[0], x.shape[0])
    assert _no_hooks(model)


def test_torchvision_small_capture_equals_torch_weights():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=64
    ).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _check_torchvision_capture(model, x)


@pytest.mark.slow
def test_torchvision_vit_b_16_capture_equals_torch_weights():
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16(weights=None).eval()
    # one image keeps it quick; the small model above covers batching and the distances
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    _check_torchvision_capture(model, x, check_distance=False)
    geo = vit_geometry(model)
    assert (geo.grid_size, geo.patch_size, geo.num_prefix_tokens) == ((14, 14), 16, 1)
    assert (geo.num_layers, geo.num_heads) == (12, 12)


def test_hooks_removed_when_the_forward_pass_fails():
    from torchvision.models import VisionTransformer

    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    with pytest.raises(Exception, match="Wrong image"):
        attention_maps(model, torch.zeros(1, 3, 16, 16), device="cpu")
    assert _no_hooks(model)


def test_unsupported_model_and_bad_input():
    with pytest.raises(TypeError, match="not a supported ViT"):
        attention_maps(torch.nn.Linear(2, 2), torch.zeros(1, 1, 2, 2), device="cpu")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        attention_maps(torch.nn.Linear(2, 2), torch.zeros(2, 2), device="cpu")


def _timm_reference_weights(model, x):
    """timm's own softmax weights: a copy with its explicit (non-fused) path, attn_drop's input."""
    import copy

    ref = copy.deepcopy(model)
    captured = []
    for block in ref.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        ref(x)
    return captured


_TIMM_CASES = {
    # name, kwargs, (grid, patch, prefix tokens, has class token, readout)
    "plain": ("vit_tiny_patch16_224", {}, ((4, 4), 16, 1, True, "class")),
    "qk_norm": ("vit_tiny_patch16_224", {"qk_norm": True}, ((4, 4), 16, 1, True, "class")),
    "registers": ("vit_tiny_patch16_224", {"reg_tokens": 4}, ((4, 4), 16, 5, True, "class")),
    "avg_pool": (
        "vit_tiny_patch16_224",
        {"class_token": False, "global_pool": "avg"},
        ((4, 4), 16, 0, False, "patches"),
    ),
    "avg_pool_with_class_token": (
        "vit_tiny_patch16_224",
        {"global_pool": "avg"},
        ((4, 4), 16, 1, True, "patches"),
    ),
    "registers_no_class_token": (
        "vit_base_patch16_reg4_gap_256",
        {"embed_dim": 48, "num_heads": 3},
        ((4, 4), 16, 4, False, "patches"),
    ),
    "distilled": ("deit_tiny_distilled_patch16_224", {}, ((4, 4), 16, 2, True, "class")),
    "non_square_grid": (
        "vit_tiny_patch16_224",
        {"img_size": (48, 80)},
        ((3, 5), 16, 1, True, "class"),
    ),
}


@pytest.mark.parametrize("case", list(_TIMM_CASES))
def test_timm_vit_capture_equals_timm_own_weights(case):
    timm = pytest.importorskip(
        "timm", reason="timm is not installed; the timm-shaped stand-in below covers the path"
    )
    name, kwargs, expected = _TIMM_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model(
        name, pretrained=False, **{"img_size": 64, "depth": 2, **kwargs}
    ).eval()
    x = torch.randn(2, 3, *model.patch_embed.img_size, generator=torch.Generator().manual_seed(0))
    fused = [block.attn.fused_attn for block in model.blocks]
    with torch.no_grad():
        before = model(x)
    maps = attention_maps(model, x, batch_size=1, device="cpu")
    with torch.no_grad():
        assert torch.equal(before, model(x))
    assert _no_hooks(model)
    assert [block.attn.fused_attn for block in model.blocks] == fused
    geo = vit_geometry(model)
    assert (
        geo.grid_size,
        geo.patch_size,
        geo.num_prefix_tokens,
        geo.has_class_token,
        geo.readout,
    ) == expected
    reference = _timm_reference_weights(model, x)
    assert len(maps) == len(reference) == 2
    for got, want in zip(maps, reference, strict=True):
        t = geo.num_prefix_tokens + geo.num_patches
        assert got.shape == (2, geo.num_heads, t, t)
        assert torch.allclose(got, want, atol=1e-6)
    # distances leave every prefix token out: compare with the patch block of timm's weights
    dist = patch_distances(geo.grid_size, geo.patch_size).float()
    p = geo.num_prefix_tokens
    by_hand = torch.stack(
        [(w[..., p:, p:] * dist).sum(-1).mean(dim=(0, 2)) for w in reference]
    )  # (L, h)
    streamed = mean_attention_distance_over(model, x, device="cpu")
    assert torch.allclose(streamed, by_hand, rtol=1e-5)
    assert _no_hooks(model)
    mask = attention_rollout(
        maps, num_prefix_tokens=p, grid_hw=geo.grid_size, normalize=False, readout=geo.readout
    )
    assert mask.shape == (2, *geo.grid_size)
    assert torch.allclose(
        mask, _rollout_by_hand(reference, p, geo.grid_size, geo.readout), atol=1e-5
    )


@pytest.mark.parametrize(
    "name, kwargs, block_or_attention",
    [
        ("beit_base_patch16_224", {}, None),  # q/v biases, relative position bias
        ("eva02_tiny_patch14_224", {"img_size": 56}, None),  # rotary position embedding
        ("vit_tiny_patch16_224", {"attn_layer": "diff"}, "DiffAttention"),
        ("vit_tiny_patch16_224", {"block_fn": "ParallelScalingBlock"}, "ParallelScalingBlock"),
    ],
)
def test_timm_models_whose_weights_cannot_be_recomputed_are_refused(
    name, kwargs, block_or_attention
):
    timm = pytest.importorskip("timm", reason="timm is not installed")
    if kwargs.get("block_fn") == "ParallelScalingBlock":
        from timm.models.vision_transformer import ParallelScalingBlock

        kwargs = {**kwargs, "block_fn": ParallelScalingBlock}
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **{"img_size": 64, "depth": 2, **kwargs})
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    with pytest.raises(TypeError, match=block_or_attention or "not a supported ViT"):
        attention_maps(model.eval(), x, device="cpu")
    with pytest.raises(TypeError):
        vit_geometry(model)
    assert _no_hooks(model)


@pytest.mark.gpu
def test_capture_on_gpu_matches_cpu(tiny_vit):
    import copy

    x = torch.randn(4, 1, 16, 16)
    cpu = mean_attention_distance_over(tiny_vit, x, device="cpu")
    gpu_model = copy.deepcopy(tiny_vit).to("cuda")  # parameters on "cuda:0", asked for as "cuda"
    with exact_float32():
        gpu = mean_attention_distance_over(gpu_model, x, batch_size=3, device="cuda")
        maps = attention_maps(gpu_model, x, device="cuda")
    assert gpu.device.type == "cpu"
    assert torch.allclose(cpu, gpu, rtol=1e-5)
    for g, c in zip(maps, attention_maps(tiny_vit, x, device="cpu"), strict=True):
        assert g.device.type == "cpu"
        assert torch.allclose(g, c, atol=1e-5)


def _tiny_torchvision_vit():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=64
    ).eval()


@pytest.mark.parametrize("kind", ["vizlib", "torchvision", "timm"])
def test_capture_runs_on_the_device_without_host_syncs(kind, tiny_vit, monkeypatch):
    """The meta device as a GPU: the model and every tensor the capture and the distance make
    stay on it (an operation mixing devices raises), the images cross once per batch, nothing
    is read back inside the loop (no sync), and the results come back on the CPU."""
    allow_meta(monkeypatch, attention)
    model, x = {
        "vizlib": lambda: (tiny_vit, torch.randn(3, 1, 16, 16)),
        "torchvision": lambda: (_tiny_torchvision_vit(), torch.randn(3, 3, 32, 32)),
        "timm": lambda: (_TimmLikeViT(qk_norm=True).eval(), torch.randn(3, 3, 12, 12)),
    }[kind]()
    geo = vit_geometry(model)
    t = geo.num_prefix_tokens + geo.num_patches
    model = model.to("meta")
    with MetaAsGPU() as mode:
        dist = mean_attention_distance_over(model, x, batch_size=2, device="meta")
    assert dist.device.type == "cpu" and dist.shape == (geo.num_layers, geo.num_heads)
    assert mode.host_reads == 0
    assert mode.device_ops.count("softmax") >= 2 * geo.num_layers  # two batches' weights
    with MetaAsGPU() as mode:
        maps = attention_maps(model, x, batch_size=2, device="meta")
        rollout = attention_rollout(
            [m.to("meta") for m in maps], num_prefix_tokens=geo.num_prefix_tokens, discard_ratio=0.5
        )
        table = mean_attention_distance(
            [m.to("meta") for m in maps], geo.grid_size, geo.patch_size, geo.num_prefix_tokens
        )
    assert [m.shape for m in maps] == [(3, geo.num_heads, t, t)] * geo.num_layers
    assert all(m.device.type == "cpu" for m in maps)
    assert rollout.device.type == "cpu" and rollout.shape == (3, *geo.grid_size)
    assert table.device.type == "cpu" and table.shape == (geo.num_layers, geo.num_heads)
    assert mode.host_reads == 0


def test_model_on_another_device_is_refused(tiny_vit):
    # the shared model is never moved: a CPU model with device="cuda" is refused, as is an absent GPU
    message = "load the model" if torch.cuda.is_available() else "no CUDA GPU"
    with pytest.raises(ValueError, match=message):
        attention_maps(tiny_vit, torch.zeros(1, 1, 16, 16), device="cuda")


class _TimmLikeAttention(torch.nn.Module):
    """timm's ``Attention`` as of timm 1.0 (fused SDPA, optional q/k LayerNorm), reproduced."""

    fused_attn = True

    def __init__(self, dim: int, num_heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = torch.nn.Linear(dim, dim * 3)
        self.q_norm = torch.nn.LayerNorm(self.head_dim) if qk_norm else torch.nn.Identity()
        self.k_norm = torch.nn.LayerNorm(self.head_dim) if qk_norm else torch.nn.Identity()
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class _TimmLikeBlock(torch.nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn = _TimmLikeAttention(dim, heads, qk_norm)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Linear(dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _TimmLikeViT(torch.nn.Module):
    """The attributes vizlib reads from a timm ViT: patch_embed, blocks, num_prefix_tokens,
    cls_token, global_pool."""

    global_pool = "token"

    def __init__(self, qk_norm: bool) -> None:
        super().__init__()
        dim, self.num_prefix_tokens = 24, 2  # class token + one register token
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(3, dim, 4, 4)
        self.patch_embed.patch_size = (4, 4)
        self.patch_embed.grid_size = (3, 3)
        self.prefix = torch.nn.Parameter(torch.randn(1, 2, dim))
        self.pos_embed = torch.nn.Parameter(torch.randn(1, 2 + 9, dim))
        self.blocks = torch.nn.Sequential(*(_TimmLikeBlock(dim, 3, qk_norm) for _ in range(2)))

    def forward(self, x):
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.prefix.expand(x.shape[0], -1, -1), tokens], 1) + self.pos_embed
        return self.blocks(tokens)[:, 0]


# the capture recognises timm's ViT and Attention by class name and module: the stand-ins
# claim both
_TimmLikeViT.__name__, _TimmLikeViT.__module__ = (
    "VisionTransformer",
    "timm.models.vision_transformer",
)
_TimmLikeAttention.__name__, _TimmLikeAttention.__module__ = "Attention", "timm.layers.attention"


class _OtherAttention(_TimmLikeAttention):
    """Any other timm attention (BEiT's adds biases, EVA's rotates q and k): not recomputable."""


_OtherAttention.__module__ = "timm.models.beit"


def test_timm_shaped_model_with_another_attention_is_refused():
    model = _TimmLikeViT(False).eval()
    model.blocks[1].attn = _OtherAttention(24, 3, False)
    with pytest.raises(TypeError, match="block 1 .* uses _OtherAttention"):
        attention_maps(model, torch.randn(1, 3, 12, 12), device="cpu")
    with pytest.raises(TypeError, match="block 1"):
        vit_geometry(model)
    assert _no_hooks(model)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_timm_code_path_on_a_timm_shaped_model(qk_norm):
    torch.manual_seed(0)
    model = _TimmLikeViT(qk_norm).eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        before = model(x)
    maps = attention_maps(model, x, device="cpu")
    with torch.no_grad():
        assert torch.equal(before, model(x))
    assert _no_hooks(model)
    geo = vit_geometry(model)
    assert (geo.grid_size, geo.patch_size, geo.num_prefix_tokens) == ((3, 3), 4, 2)
    assert (geo.num_layers, geo.num_heads) == (2, 3)
    # the captured weights reproduce each block's fused attention output
    with torch.no_grad():
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.prefix.expand(2, -1, -1), tokens], 1) + model.pos_embed
        for block, w in zip(model.blocks, maps, strict=True):
            h = block.norm1(tokens)
            attn = block.attn
            v = attn.qkv(h).reshape(2, 11, 3, 3, 8).permute(2, 0, 3, 1, 4)[2]
            out = attn.proj((w @ v).transpose(1, 2).reshape(2, 11, 24))
            assert torch.allclose(out, attn(h), atol=1e-5)
            tokens = block(tokens)
    dist = mean_attention_distance(maps, (3, 3), 4, num_prefix_tokens=2)
    assert torch.allclose(mean_attention_distance_over(model, x, device="cpu"), dist, rtol=1e-5)


@pytest.mark.gpu
def test_torchvision_capture_on_gpu_matches_cpu():
    import copy

    model = _tiny_torchvision_vit()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    gpu_model = copy.deepcopy(model).to("cuda")
    with exact_float32():
        on_gpu = attention_maps(gpu_model, x, batch_size=2, device="cuda")
        dist_gpu = mean_attention_distance_over(gpu_model, x, batch_size=2, device="cuda")
    on_cpu = attention_maps(model, x, batch_size=2, device="cpu")
    for g, c in zip(on_gpu, on_cpu, strict=True):  # blocks 2 and 3 follow the GPU's fused attention
        assert g.device.type == "cpu"
        assert torch.allclose(g, c, atol=1e-5)
    assert _no_hooks(gpu_model)
    dist_cpu = mean_attention_distance_over(model, x, device="cpu")
    assert torch.allclose(dist_gpu, dist_cpu, rtol=1e-5)
