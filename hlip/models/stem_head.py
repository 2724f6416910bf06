"""Deep supervision of the tokeniser: a linear multi-label head on each study's strongest stem response.

The stem response is `VisionTransformer3D.forward_with_stem`'s second output: the maximum over every
patch-embedding token of the study's real scans, per channel, before positions and any attention block. The head
batch-normalises it and classifies it into the report findings, so a BCE on its logits sends the stem a gradient
that no attention block has mixed (`pretrain.warmup.stem_supervision`, `pretrain.contrastive.stem_supervision`).
It is a training device only: `HLIPClassifier` and `HLIP` carry it while they train and no exported model has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class StemHead(nn.Module):
    """BatchNorm over the stem's `width` channels, then a linear layer to `num_classes` logits."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, stem: Tensor) -> Tensor:
        """Stem responses `[B, width]` -> logits `[B, num_classes]`."""
        out: Tensor = self.classifier(self.norm(stem))
        return out


@torch.no_grad()
def init_prior_bias(heads: Sequence[nn.Linear], positive_rate: Sequence[float], eps: float = 1e-3) -> None:
    """Start each finding's logit of every head at the log-odds of its training prevalence (RetinaNet's prior init).

    With a zero bias every logit starts at p = 0.5; AdamW's bounded steps then need about `|log-odds| / lr` steps
    just to reach the label prior (1,700 steps at 15% prevalence and lr 1e-3, more than a demo run has), and the
    gradient early on is spent on the bias instead of the image.

    Raises:
        ValueError: `positive_rate` does not have one value per output of each head.
    """
    p = torch.tensor(positive_rate, dtype=torch.float64).clamp(eps, 1.0 - eps)
    log_odds = torch.log(p / (1.0 - p))
    for head in heads:
        if len(positive_rate) != head.out_features:
            raise ValueError(f"{len(positive_rate)} prevalences for {head.out_features} findings")
        head.bias.copy_(log_odds.to(head.bias.dtype))
