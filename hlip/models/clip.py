"""The HLIP CLIP model (vision tower + text tower + temperature) and the supervised warm-up classifier.

Both return a dict that goes straight into their loss: `loss(**model(image, text))` for CLIP/SigLIP,
`loss(**model(image), labels=labels)` for the multi-label warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hlip.models.config import ModelConfig
from hlip.models.stem_head import StemHead, init_prior_bias
from hlip.models.text import TextTower
from hlip.models.visual import VisionTransformer3D

MAX_LOGIT_SCALE = 100.0


class HLIP(nn.Module):
    """CLIP over studies and reports, open_clip style (`visual`, `text`, `logit_scale`, `logit_bias`).

    While it trains with `pretrain.contrastive.stem_supervision`, `stem_head` holds a `StemHead` (stage A's, carried
    over) and `forward` also returns its `stem_logits`; it is None otherwise, and always in an exported model.

    Args:
        cfg: Architecture.
        pretrained_text: Load the text tower's weights from its directory (False: random init).
    """

    def __init__(self, cfg: ModelConfig, pretrained_text: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer3D(cfg.vision, cfg.embed_dim)
        self.text = TextTower(cfg.text, cfg.embed_dim, pretrained=pretrained_text)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)))
        self.logit_bias = None if cfg.init_logit_bias is None else nn.Parameter(torch.tensor(cfg.init_logit_bias))
        self.stem_head: StemHead | None = None

    def encode_image(self, image: Tensor, scan_mask: Tensor | None = None, normalize: bool = False) -> Tensor:
        """Study embeddings `[B, embed_dim]` of `image: [B, N, 1, D, H, W]`."""
        features = self.visual(image, scan_mask)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, text: Tensor, normalize: bool = False) -> Tensor:
        """Report embeddings `[B, embed_dim]` of token ids `[B, L]`."""
        features = self.text(text)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(
        self,
        image: Tensor | None = None,
        text: Tensor | None = None,
        scan_mask: Tensor | None = None,
        text_pooled: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Normalised features and the temperature (clamped at 100) for `ClipLoss` / `SigLipLoss`.

        `text_pooled` `[B, W]`, in place of `text`: the text trunk's pooled output, computed beforehand
        (`TextTower.pooled`; a frozen trunk's, `hlip.training.text_features`); only `text.proj` then runs.

        Returns:
            `image_features [B, E]` and/or `text_features [B, E]`, `logit_scale` (exp'd, scalar) and, for
            SigLIP models, `logit_bias`; with a `stem_head` and an image, also its `stem_logits [B, classes]`.
        """
        out: dict[str, Tensor] = {"logit_scale": self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)}
        if image is not None and self.stem_head is not None:
            embedding, stem = self.visual.forward_with_stem(image, scan_mask)
            out["image_features"] = F.normalize(embedding, dim=-1)
            out["stem_logits"] = self.stem_head(stem)
        elif image is not None:
            out["image_features"] = self.encode_image(image, scan_mask, normalize=True)
        if text is not None and text_pooled is not None:
            raise ValueError("give text or text_pooled, not both")
        if text is not None:
            out["text_features"] = self.encode_text(text, normalize=True)
        elif text_pooled is not None:
            out["text_features"] = F.normalize(self.text.proj(text_pooled), dim=-1)
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        return out

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Keep the log temperature in [0, log 100]; call after each optimiser step (as open_clip does)."""
        self.logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))

    def lock_text_tower(self) -> None:
        """Freeze the text trunk (LiT); the text projection stays trainable."""
        self.text.lock()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing in both towers (a wholly frozen text trunk needs none)."""
        self.visual.set_grad_checkpointing(enable)
        if not self.text.trunk_fixed:
            self.text.set_grad_checkpointing(enable)


class HLIPClassifier(nn.Module):
    """Supervised warm-up model: the HLIP vision tower plus a linear multi-label head.

    The vision tower (including its projection `visual.head`) has the same parameter names as in `HLIP`,
    so `visual.*` weights carry over to contrastive training unchanged.

    With `stem_head`, a second head (`StemHead`) classifies each study's strongest stem response: deep supervision
    of the tokeniser, whose gradient reaches the stem without passing through any attention block. Both heads start
    at the label prior; neither is part of the exported CLIP model.

    Args:
        cfg: Architecture (only `vision` and `embed_dim` are used).
        num_classes: Number of findings.
        stem_head: Add the stem head (its logits are returned as `stem_logits`).
        stem_head_kind: Its form, one of `STEM_HEADS` (`StemHead`).
    """

    def __init__(
        self, cfg: ModelConfig, num_classes: int, stem_head: bool = False, stem_head_kind: str = "linear"
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer3D(cfg.vision, cfg.embed_dim)
        self.classifier = nn.Linear(cfg.embed_dim, num_classes)
        self.stem_head = StemHead(cfg.vision.width, num_classes, stem_head_kind) if stem_head else None

    def init_prior_bias(self, positive_rate: Sequence[float], eps: float = 1e-3) -> None:
        """Start every head's logits at the log-odds of each finding's training prevalence (`init_prior_bias`)."""
        heads = [self.classifier] if self.stem_head is None else [self.classifier, *self.stem_head.prior_layers()]
        init_prior_bias(heads, positive_rate, eps)

    def forward(self, image: Tensor, scan_mask: Tensor | None = None) -> dict[str, Tensor]:
        """`{"logits": [B, num_classes]}` for `MultiLabelBCELoss`, plus `stem_logits` with the stem head."""
        if self.stem_head is None:
            return {"logits": self.classifier(self.visual(image, scan_mask))}
        embedding, stem = self.visual.forward_with_stem(image, scan_mask)
        return {"logits": self.classifier(embedding), "stem_logits": self.stem_head(stem)}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing in the vision tower."""
        self.visual.set_grad_checkpointing(enable)
