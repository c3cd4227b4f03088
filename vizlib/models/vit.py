"""A small Vision Transformer (Dosovitskiy et al., 2021) whose attention weights can be returned."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ViT", "ViTConfig"]


@dataclass
class ViTConfig:
    image_size: int = 32  # square input, pixels
    patch_size: int = 4  # kernel = stride of the patch embedding, pixels
    in_channels: int = 1
    num_classes: int = 10
    dim: int = 96  # token width D
    depth: int = 6  # encoder blocks
    heads: int = 4  # attention heads per block; dim must divide by heads
    mlp_dim: int = 192  # hidden width of each block's MLP
    dropout: float = 0.0


class Attention(nn.Module):
    """Multi-head self-attention with a fused path and an explicit one that keeps the weights."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attend = nn.Softmax(dim=-1)  # a module of its own so a hook can record it
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, self.head_dim)  # (B, T, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, T, d)
        if return_attention:
            attn = self.attend((q @ k.transpose(-2, -1)) * self.scale)  # (B, h, T, T)
            attn_dropped = F.dropout(attn, self.dropout, self.training)
            out = attn_dropped @ v  # (B, h, T, d)
        else:
            attn = None
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0
            )  # (B, h, T, d)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(out), attn


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, attn = self.attn(self.norm1(x), return_attention)
        x = x + y  # (B, T, D)
        x = x + self.mlp(self.norm2(x))  # (B, T, D)
        return x, attn


class ViT(nn.Module):
    """Vision Transformer: conv patch embedding, class token, learned 1-D position embedding.

    Input (B, C, H, W) with H = W = ``image_size``; output logits (B, num_classes), and with
    ``return_attention=True`` also a list of ``depth`` tensors (B, heads, T, T), T = 1 + patches.
    """

    num_prefix_tokens = 1  # the class token

    def __init__(self, config: ViTConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = ViTConfig(**{**asdict(config or ViTConfig()), **overrides})
        if cfg.image_size % cfg.patch_size:
            raise ValueError(
                f"image_size={cfg.image_size} must be a multiple of patch_size={cfg.patch_size}"
            )
        self.config = cfg
        self.patch_size = cfg.patch_size
        self.grid_size = (cfg.image_size // cfg.patch_size,) * 2  # (gh, gw)
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.patch_embed = nn.Conv2d(
            cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, cfg.dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.dim, cfg.heads, cfg.mlp_dim, cfg.dropout) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return the token sequence fed to the first block, (B, 1 + patches, D)."""
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            raise ValueError(f"expected {size}x{size} input, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1) + self.pos_embed  # (B, T, D)

    def forward_features(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the normalised tokens (B, T, D) and, if asked, each block's attention."""
        x = self.embed(x)
        attentions = []
        for block in self.blocks:
            x, attn = block(x, return_attention)
            if return_attention:
                attentions.append(attn)
        return self.norm(x), attentions

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits (B, classes) from the class token of normalised tokens (B, T, D)."""
        return self.head(tokens[:, 0])

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        tokens, attentions = self.forward_features(x, return_attention)
        logits = self.forward_head(tokens)
        return (logits, attentions) if return_attention else logits
