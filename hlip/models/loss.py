"""Losses: CLIP (symmetric InfoNCE), SigLIP (pairwise sigmoid) and the masked multi-label BCE warm-up.

Each loss takes the model's output dict as keyword arguments (`loss(**model_out)`) and ignores keys it does
not use. Under DDP (`world_size > 1`) the contrastive losses gather features from every rank; with
`gather_with_grad` the gradient flows back through the gather to the rank that produced each feature.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


def gather_features(features: Tensor, rank: int, world_size: int, gather_with_grad: bool = False) -> Tensor:
    """Concatenate `[n, E]` features of all ranks -> `[world_size * n, E]` (rank-major).

    Without `gather_with_grad` the other ranks' features are constants and this rank's own slice keeps its
    gradient.
    """
    if world_size == 1:
        return features
    if gather_with_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(features))
    gathered = [torch.empty_like(features) for _ in range(world_size)]
    dist.all_gather(gathered, features.contiguous())
    gathered[rank] = features
    return torch.cat(gathered)


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over image-text pairs.

    With `label_targets` w > 0 the target of each row is not only its own pair: a share w goes to the pairs whose
    finding labels agree with it (MedCLIP's semantic matching loss, Wang et al. 2022). In a small batch of
    clinical studies several share a diagnosis (a third of the demo corpus is normal), and plain InfoNCE pushes
    each of them away from the others' reports; the soft target stops penalising those false negatives.

    Args:
        local_loss: Under DDP, score only this rank's rows against all columns (cheaper, same optimum).
        gather_with_grad: Backpropagate through the cross-rank gather.
        rank: This process's rank.
        world_size: Number of processes.
        label_targets: Weight w of the label-similarity targets (0: plain CLIP). `forward` then needs `labels`.
    """

    def __init__(
        self,
        local_loss: bool = False,
        gather_with_grad: bool = False,
        rank: int = 0,
        world_size: int = 1,
        label_targets: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_targets <= 1.0:
            raise ValueError(f"label_targets must lie in [0, 1], got {label_targets}")
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.rank = rank
        self.world_size = world_size
        self.label_targets = label_targets

    def logits(
        self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor, logit_bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits per image `[n, m]` and per text `[n, m]` (m = n, or n * world_size)."""
        all_image = gather_features(image_features, self.rank, self.world_size, self.gather_with_grad)
        all_text = gather_features(text_features, self.rank, self.world_size, self.gather_with_grad)
        if self.local_loss:
            per_image = logit_scale * image_features @ all_text.T  # [n, W*n]
            per_text = logit_scale * text_features @ all_image.T  # [n, W*n]
        else:
            per_image = logit_scale * all_image @ all_text.T  # [W*n, W*n]
            per_text = per_image.T
        if logit_bias is not None:
            per_image, per_text = per_image + logit_bias, per_text + logit_bias
        return per_image, per_text

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        labels: Tensor | None = None,
        **_: Any,
    ) -> Tensor | dict[str, Tensor]:
        """Mean of the image->text and text->image cross-entropies.

        Args:
            labels: Finding labels `[n, F]` of this rank's studies (1 positive; 0, -1 or NaN not), needed when
                `label_targets` > 0 and ignored otherwise.
        """
        per_image, per_text = self.logits(image_features, text_features, logit_scale, logit_bias)
        targets = torch.arange(per_image.shape[0], device=per_image.device)
        if self.local_loss and self.world_size > 1:
            targets = targets + per_image.shape[0] * self.rank
        if self.label_targets > 0.0:
            if labels is None:
                raise ValueError("ClipLoss with label_targets > 0 needs the studies' finding labels")
            soft = self.soft_targets(labels, targets, per_image.shape[1])
            loss = (_soft_cross_entropy(per_image, soft) + _soft_cross_entropy(per_text, soft)) / 2
        else:
            loss = (F.cross_entropy(per_image, targets) + F.cross_entropy(per_text, targets)) / 2
        return {"contrastive_loss": loss} if output_dict else loss

    def soft_targets(self, labels: Tensor, own: Tensor, columns: int) -> Tensor:
        """Target distribution `[rows, columns]`: 1 - w on each row's own pair, w spread over the columns in
        proportion to the cosine similarity of their label vectors (studies with no positive finding share one
        "no finding" component, so normal studies match each other)."""
        positive = (torch.nan_to_num(labels.detach().float(), nan=0.0) == 1.0).float()  # [n, F]
        vectors = torch.cat([positive, (positive.sum(1, keepdim=True) == 0).float()], dim=1)  # [n, F + 1]
        vectors = F.normalize(vectors, dim=1)
        every = gather_features(vectors, self.rank, self.world_size)  # [W*n, F + 1]
        rows = vectors if self.local_loss or self.world_size == 1 else every
        similarity = rows @ every.T  # [rows, columns], 1 on the own pair
        if similarity.shape != (own.shape[0], columns):
            raise ValueError(f"labels give a {tuple(similarity.shape)} target, logits are {(own.shape[0], columns)}")
        spread = similarity / similarity.sum(dim=1, keepdim=True)
        hard = F.one_hot(own, columns).to(spread.dtype)
        return (1.0 - self.label_targets) * hard + self.label_targets * spread


def _soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of row-wise target distributions `[n, m]`, averaged over rows."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP): each image-text pair is a binary positive/negative decision.

    Under DDP this rank's images are scored against the texts of every rank (gathered), so every rank
    sees all negatives; the loss is normalised by the local batch size as in SigLIP.

    Args:
        gather_with_grad: Backpropagate through the cross-rank gather of text features.
        rank: This process's rank.
        world_size: Number of processes.
    """

    def __init__(self, gather_with_grad: bool = True, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.gather_with_grad = gather_with_grad
        self.rank = rank
        self.world_size = world_size

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **_: Any,
    ) -> Tensor | dict[str, Tensor]:
        """`-sum(log sigmoid(label * (scale * <img, txt> + bias))) / n`."""
        if logit_bias is None:
            raise ValueError("SigLipLoss needs a model with a logit_bias (init_logit_bias, e.g. -10)")
        all_text = gather_features(text_features, self.rank, self.world_size, self.gather_with_grad)
        logits = logit_scale * image_features @ all_text.T + logit_bias  # [n, W*n]
        n = image_features.shape[0]
        labels = -torch.ones_like(logits)  # [n, W*n]
        labels[torch.arange(n), torch.arange(n) + n * self.rank] = 1.0
        loss = -F.logsigmoid(labels * logits).sum() / n
        return {"contrastive_loss": loss} if output_dict else loss


class MultiLabelBCELoss(nn.Module):
    """Binary cross-entropy over findings; uncertain labels (-1) are masked out.

    Args:
        pos_weight: Optional per-finding weight of positives `[K]`.
    """

    def __init__(self, pos_weight: Tensor | None = None) -> None:
        super().__init__()
        self.pos_weight: Tensor | None
        self.register_buffer("pos_weight", pos_weight)

    def forward(
        self, logits: Tensor, labels: Tensor, output_dict: bool = False, **_: Any
    ) -> Tensor | dict[str, Tensor]:
        """Mean BCE over the known entries of `labels [B, K]` (1 present, 0 absent, -1 uncertain)."""
        known = labels >= 0  # [B, K]
        targets = labels.clamp(min=0).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")
        loss = (loss * known).sum() / known.sum().clamp(min=1)
        return {"bce_loss": loss} if output_dict else loss


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Loss by name: `clip`, `siglip` or `bce` (keyword arguments go to its constructor)."""
    losses: dict[str, type[nn.Module]] = {"clip": ClipLoss, "siglip": SigLipLoss, "bce": MultiLabelBCELoss}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(losses)}")
    return losses[name](**kwargs)
