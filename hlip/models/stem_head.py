"""Deep supervision of the tokeniser: a multi-label head on the strongest stem responses of a study's scans.

The stem response is `VisionTransformer3D.forward_with_stem`'s second output (`StemResponse`): each scan's maximum
over its patch-embedding tokens, per channel, before positions and any attention block. The head classifies it
into the report findings, so a BCE on its logits sends the stem a gradient that no attention block has mixed
(`pretrain.warmup.stem_supervision`, `pretrain.contrastive.stem_supervision`). Three forms (`STEM_HEADS`):

- `linear`: the study's maximum over its scans -> BatchNorm -> linear. Evidence of different scans is merged
  channel by channel before anything combines channels, so it cannot tell which scan a response came from.
- `scan_mlp`: each scan's response -> BatchNorm -> a small MLP -> per-scan logits, and the study's logit is the
  maximum over its scans (multiple-instance learning: a finding is present if some scan shows it). Channels are
  combined within a scan first, so a response can count differently by the scan's own contrast (the sequence kind
  the stem can read from it) without the model being told the kind.
- `linear_and_scan_mlp`: both heads side by side, each with its own BCE (`StemHead`).

It is a training device only: `HLIPClassifier` and `HLIP` carry it while they train and no exported model has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hlip.models.config import STEM_HEADS
from hlip.models.packing import StudyPacking

SCAN_MLP_HIDDEN = 64  # the per-scan MLP's hidden width (a tokeniser of width 128 in the demo)


@dataclass(frozen=True)
class StemResponse:
    """Each real scan's strongest stem response per channel `[S, C]`, and which study each scan belongs to."""

    scans: Tensor
    packing: StudyPacking

    def study_max(self) -> Tensor:
        """Each study's strongest response: the maximum over its scans `[B, C]`."""
        return self.packing.study_max(self.scans)


class StemHead(nn.Module):
    """The stem head in one of the forms of `STEM_HEADS` (module docstring).

    - `linear`: `norm` (BatchNorm over the stem's `width` channels) -> `classifier` on the study's maximum.
    - `scan_mlp`: `norm` -> `hidden` (linear to `SCAN_MLP_HIDDEN`, GELU) -> `classifier` on each scan; the study's
      logits are the maximum over its scans.
    - `linear_and_scan_mlp`: both heads side by side, each with its own layers and its own logits (`linear`'s
      first, then `scan_mlp`'s: `[B, 2 x num_classes]`), so each is trained to classify on its own (the training
      loop's BCE compares each set with the same labels). Meant to keep the `linear` head's gradient, which starts
      the stem reliably, beside the `scan_mlp` head's; docs/demo-model.md (session 40) has what it measured.

    `prior_layers` are the output layers whose bias starts at the label prior (`init_prior_bias`).

    Raises:
        ValueError: `kind` is not one of `STEM_HEADS`.
    """

    def __init__(self, width: int, num_classes: int, kind: str = "linear") -> None:
        super().__init__()
        if kind not in STEM_HEADS:
            raise ValueError(f"stem head must be one of {STEM_HEADS}, got {kind!r}")
        self.kind = kind
        self.norm = nn.BatchNorm1d(width)
        self.hidden: nn.Module | None = None
        self.scan: nn.Sequential | None = None
        self.scan_classifier: nn.Linear | None = None
        if kind == "scan_mlp":
            self.hidden = _hidden(width)
        self.classifier = nn.Linear(SCAN_MLP_HIDDEN if self.hidden is not None else width, num_classes)
        if kind == "linear_and_scan_mlp":
            self.scan = nn.Sequential(nn.BatchNorm1d(width), _hidden(width))
            self.scan_classifier = nn.Linear(SCAN_MLP_HIDDEN, num_classes)

    def prior_layers(self) -> list[nn.Linear]:
        """The output layers whose bias starts at the label prior."""
        return [self.classifier] if self.scan_classifier is None else [self.classifier, self.scan_classifier]

    def forward(self, stem: StemResponse) -> Tensor:
        """Stem responses -> study logits `[B, num_classes]` (`[B, 2 x num_classes]` for `linear_and_scan_mlp`)."""
        if self.hidden is not None:  # scan_mlp
            return stem.packing.study_max(self.classifier(self.hidden(self.norm(stem.scans))))  # [S, K] -> [B, K]
        out: Tensor = self.classifier(self.norm(stem.study_max()))
        if self.scan is not None and self.scan_classifier is not None:  # linear_and_scan_mlp
            per_scan = stem.packing.study_max(self.scan_classifier(self.scan(stem.scans)))
            out = torch.cat([out, per_scan], dim=1)
        return out


def _hidden(width: int) -> nn.Sequential:
    """The per-scan MLP's hidden layer."""
    return nn.Sequential(nn.Linear(width, SCAN_MLP_HIDDEN), nn.GELU())


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
