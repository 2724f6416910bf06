"""Attention pooling of a study's patch tokens: a few learned queries, each reading the whole study.

A CLS token and a mean patch token (`pool="dinotxt"`) summarise all scans of a study in one or two vectors; on the
demo, each scan's features read out per sequence kind hold more class information than that study vector
(docs/demo-model.md, session 23). With `pool="map"` (multihead attention pooling, as SigLIP's MAP head) the study
feature is the CLS token joined to `Q` learned queries, each a softmax-weighted mean over every patch token of every
real scan of the study, so one query can settle on the diffusion scans' tokens and another on the post-contrast
ones. Padded scans are never attended to: every study is pooled over its own real scans only (bucketed by scan
count, `StudyPacking.per_study`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionPool(nn.Module):
    """`Q` learned queries attending over a group's tokens: `[G, L, C] -> [G, Q * C]`.

    Args:
        width: Token width C.
        heads: Attention heads (C must divide by them).
        queries: Number of learned queries Q.
    """

    def __init__(self, width: int, heads: int, queries: int) -> None:
        super().__init__()
        if queries < 1:
            raise ValueError(f"attention pooling needs at least one query, got {queries}")
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(1, queries, width))
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        nn.init.normal_(self.query, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        """Pooled `[G, Q * C]` of `tokens: [G, L, C]` (every token of a group attended to)."""
        G, _, C = tokens.shape
        h = self.heads
        q = self.q(self.query).expand(G, -1, -1)  # [G, Q, C]
        k, v = self.kv(tokens).chunk(2, dim=-1)  # [G, L, C] each
        q, k, v = (t.reshape(G, t.shape[1], h, C // h).transpose(1, 2) for t in (q, k, v))  # [G, h, *, C/h]
        out = F.scaled_dot_product_attention(q, k, v)  # [G, h, Q, C/h]
        out = self.proj(out.transpose(1, 2).reshape(G, -1, C))  # [G, Q, C]
        return out.flatten(1)  # [G, Q*C]
