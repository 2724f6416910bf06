"""AdamW with open_clip's weight-decay rule: no decay on norms, biases, the temperature and embeddings."""

from __future__ import annotations

from torch import nn
from torch.optim import AdamW

NO_DECAY_NAMES = ("logit_scale", "logit_bias", "cls_token", "reg_token", "pos_embed", "embeddings")


def exclude_from_decay(name: str, param: nn.Parameter) -> bool:
    """True for gains/biases (1-D), norms, the temperature/bias scalars and token/position embeddings."""
    return param.ndim < 2 or "norm" in name or "bias" in name or any(k in name for k in NO_DECAY_NAMES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Two AdamW groups of the trainable parameters: `decay` and `no_decay` (frozen ones are left out)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if exclude_from_decay(name, param) else decay).append(param)
    return [
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
    ]


def create_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98),
                     eps: float = 1e-6) -> AdamW:  # fmt: skip
    """AdamW over `param_groups` (open_clip's CLIP betas and eps)."""
    return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
