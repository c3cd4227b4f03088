"""Embedding probes: cosine similarity, PCA against scikit-learn, the sinusoidal formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from tests.test_device import MetaAsGPU
from vizlib.posembed import (
    patch_embedding_components,
    position_similarity,
    sinusoidal_encoding,
    sinusoidal_similarity,
    vit_embeddings,
)


def test_orthogonal_embeddings_have_zero_off_diagonal_similarity():
    gh, gw, d = 3, 4, 16
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    patches = q[: gh * gw] * torch.arange(1, gh * gw + 1)[:, None]  # orthogonal, varied norms
    pos = torch.cat([torch.randn(1, d), patches])[None]  # (1, 1 + N, D), class token first
    sim = position_similarity(pos, (gh, gw), num_prefix_tokens=1)
    assert sim.shape == (gh, gw, gh, gw)
    flat = sim.reshape(gh * gw, gh * gw)
    assert torch.allclose(flat, torch.eye(gh * gw), atol=1e-6)


def test_similarity_matches_cosine_by_hand():
    pos = torch.randn(1 + 4, 5, generator=torch.Generator().manual_seed(1))
    sim = position_similarity(pos, (2, 2))
    a, b = pos[1], pos[4]  # patch (0, 0) and patch (1, 1)
    assert sim[0, 0, 1, 1].item() == pytest.approx(float(a @ b / (a.norm() * b.norm())), rel=1e-5)
    with pytest.raises(ValueError, match="grid"):
        position_similarity(pos, (3, 3))


def test_patch_embedding_components_match_sklearn_pca():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(40, 3, 4, 4, generator=gen) * torch.linspace(0.1, 2, 48).reshape(3, 4, 4)
    comps, ratios = patch_embedding_components(weight, k=6)
    assert comps.shape == (6, 3, 4, 4) and ratios.shape == (6,)
    pca = PCA(n_components=6).fit(weight.reshape(40, -1).double().numpy())
    ours = comps.reshape(6, -1).double().numpy()
    for mine, theirs in zip(ours, pca.components_, strict=True):
        sign = np.sign(mine @ theirs)
        np.testing.assert_allclose(mine, sign * theirs, atol=1e-5)
    np.testing.assert_allclose(ratios.numpy(), pca.explained_variance_ratio_, rtol=1e-5)


def test_components_clamped_to_rank_with_warning():
    weight = torch.randn(96, 1, 4, 4)
    with pytest.warns(UserWarning, match="using k=16"):
        comps, ratios = patch_embedding_components(weight, k=28)
    assert comps.shape == (16, 1, 4, 4)
    assert ratios.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_sinusoidal_encoding_matches_formula():
    n, d = 7, 10
    pe = sinusoidal_encoding(n, d)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    odd = sinusoidal_encoding(3, 5)
    assert odd.shape == (3, 5)
    assert odd[2, 4].item() == pytest.approx(math.sin(2 / 10000 ** (4 / 5)), abs=1e-6)
    sim = sinusoidal_similarity(pe)
    assert sim[3, 5].item() == pytest.approx(float(pe[3] @ pe[5]), rel=1e-5)
    # every position has norm^2 = dim / 2 (sin^2 + cos^2 per pair)
    assert torch.allclose(sim.diagonal(), torch.full((n,), d / 2), atol=1e-5)


def test_vit_embeddings_from_ours_and_torchvision(tiny_vit):
    from torchvision.models import VisionTransformer

    emb = vit_embeddings(tiny_vit)
    assert emb.pos_embed.shape == (17, 32) and emb.patch_weight.shape == (32, 1, 4, 4)
    assert emb.grid_size == (4, 4) and emb.num_prefix_tokens == 1
    assert torch.equal(emb.pos_embed, tiny_vit.pos_embed[0].detach())
    tv = VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    emb = vit_embeddings(tv)
    assert emb.pos_embed.shape == (17, 16) and emb.patch_weight.shape == (16, 3, 8, 8)
    assert emb.grid_size == (4, 4) and emb.num_prefix_tokens == 1
    with pytest.raises(TypeError):
        vit_embeddings(torch.nn.Linear(2, 2))


def test_vit_embeddings_from_a_timm_shaped_model():
    from tests.test_attention import _TimmLikeViT

    emb = vit_embeddings(_TimmLikeViT(qk_norm=False))
    assert emb.pos_embed.shape == (11, 24) and emb.patch_weight.shape == (24, 3, 4, 4)
    assert emb.grid_size == (3, 3) and emb.num_prefix_tokens == 2
    assert position_similarity(emb.pos_embed, emb.grid_size, emb.num_prefix_tokens).shape == (
        3,
        3,
        3,
        3,
    )


def test_embeddings_of_a_model_on_the_gpu_come_back_to_the_cpu(tiny_vit):
    """The meta device as a GPU: the embeddings are copied to the CPU, the probes run on them."""
    model = tiny_vit.to("meta")
    with MetaAsGPU() as mode:
        emb = vit_embeddings(model)
        sim = position_similarity(emb.pos_embed, emb.grid_size, emb.num_prefix_tokens)
        comps, ratios = patch_embedding_components(emb.patch_weight, k=3)
    assert emb.pos_embed.device.type == emb.patch_weight.device.type == "cpu"
    assert emb.pos_embed.shape == (17, 32) and emb.patch_weight.shape == (32, 1, 4, 4)
    assert sim.shape == (4, 4, 4, 4) and comps.shape == (3, 1, 4, 4) and ratios.shape == (3,)
    assert mode.host_reads == 0
