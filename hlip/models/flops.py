"""Analytic FLOP count of the vision tower, for model FLOP utilisation (MFU) reports.

Counts multiply-adds as 2 FLOPs for the patch embedding (convolutions), every linear layer and the two
attention matmuls (`4 * L^2 * C` per group of L tokens), as `torch.utils.flop_counter` does; norms,
activations and softmax are left out. A training step costs about 3x the forward pass (plus one more forward
with gradient checkpointing).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from hlip.models.config import VisionConfig


def vision_forward_flops(
    cfg: VisionConfig,
    scans_per_study: Sequence[int],
    embed_dim: int,
    image_size: tuple[int, int, int] | None = None,
) -> int:
    """Forward FLOPs of `VisionTransformer3D` on one batch.

    Args:
        cfg: Vision config.
        scans_per_study: Real scans of each study in the batch.
        embed_dim: Output size of the projection head.
        image_size: Per-scan input `(D, H, W)`; default the configured size.
    """
    D, H, W = image_size or cfg.image_size
    pd, ph, pw = cfg.patch_size
    d, t = D // pd, (H // ph) * (W // pw)
    S, B, C, P = sum(scans_per_study), len(scans_per_study), cfg.width, cfg.num_prefix_tokens
    voxels = S * D * H * W
    if cfg.stem_channels:
        chans = (1, *cfg.stem_channels)
        if cfg.stem_pool == "stride":  # each conv halves the axes that still divide; the rest is a linear patchify
            embed, remaining, size = 0, list(cfg.patch_size), [D, H, W]
            for a, b in itertools.pairwise(chans):
                stride = [2 if r % 2 == 0 and r > 1 else 1 for r in remaining]
                remaining = [r // st for r, st in zip(remaining, stride, strict=True)]
                size = [n // st for n, st in zip(size, stride, strict=True)]
                embed += 2 * 27 * a * b * S * math.prod(size)
            embed += 2 * math.prod(remaining) * chans[-1] * C * S * d * t
        else:  # full-resolution convs, or a 2x2x2 max-pool between them (stem_downsample)
            embed = sum(
                2 * 27 * a * b * voxels // (8**i if cfg.stem_downsample else 1)
                for i, (a, b) in enumerate(itertools.pairwise(chans))
            )
            embed += 2 * chans[-1] * C * S * d * t
    else:
        embed = 2 * math.prod(cfg.patch_size) * C * S * d * t
    hidden = int(C * cfg.mlp_ratio)
    total = embed + 2 * B * cfg.num_features * embed_dim
    for level in cfg.levels:
        lengths = {
            "slice": [P + t] * (S * d),
            "scan": [P + d * t] * S,
            "study": [P + n * d * t for n in scans_per_study],
        }[level]
        total += 2 * sum(lengths) * (4 * C * C + 2 * C * hidden) + 4 * C * sum(n * n for n in lengths)
    if cfg.pool == "map":  # keys and values of every patch token, Q queries read them, the output projection
        Q, L = cfg.pool_queries, [n * d * t for n in scans_per_study]
        total += sum(4 * n * C * C + 4 * Q * n * C + 2 * Q * C * C for n in L)
        total += len(set(scans_per_study)) * 2 * Q * C * C  # the queries' projection, once per scan count
    return total
