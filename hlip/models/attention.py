"""Multi-head self-attention over dense groups or packed variable-length groups.

Attention runs through `torch.nn.functional.scaled_dot_product_attention`, so GPUs get the flash or
memory-efficient kernels. A dense input `[G, L, C]` is G independent groups of L tokens (slice, scan or a
uniform study level). A packed input `[1, T, C]` comes with `AttentionGroups`: consecutive runs of tokens
form groups of equal length per bucket, each run a dense batch; no attention mask is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hlip.models.hierarchy import AttentionGroups


class Attention(nn.Module):
    """timm-style attention (`qkv`, `proj`).

    Args:
        dim: Token width C.
        num_heads: Heads H; head width C / H.
        qkv_bias: Bias on `qkv`.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after `proj`.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, groups: AttentionGroups | None = None) -> Tensor:
        """`[G, L, C] -> [G, L, C]`, or packed `[1, T, C] -> [1, T, C]` with `groups`."""
        qkv = self.qkv(x)  # [G, L, 3C]
        x = self._attend(qkv) if groups is None else self._attend_packed(qkv, groups)
        return self.proj_drop(self.proj(x))

    def _attend(self, qkv: Tensor) -> Tensor:
        G, L, C3 = qkv.shape
        q, k, v = qkv.view(G, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x [G, H, L, Dh]
        dropout = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # [G, H, L, Dh]
        return x.transpose(1, 2).reshape(G, L, C3 // 3)  # [G, L, C]

    def _attend_packed(self, qkv: Tensor, groups: AttentionGroups) -> Tensor:
        runs = qkv[0].split([g * n for g, n in groups.sizes])  # each [G_k*L_k, 3C]
        outs = [self._attend(run.view(g, n, -1)).flatten(0, 1) for run, (g, n) in zip(runs, groups.sizes, strict=True)]
        return torch.cat(outs)[None]  # [1, T, C]
