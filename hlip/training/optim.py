"""AdamW with open_clip's weight-decay rule: no decay on norms, biases, the temperature and embeddings."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn
from torch.optim import AdamW

NO_DECAY_NAMES = ("logit_scale", "logit_bias", "cls_token", "reg_token", "pos_embed", "embeddings")


def exclude_from_decay(name: str, param: nn.Parameter) -> bool:
    """True for gains/biases (1-D), norms, the temperature/bias scalars and token/position embeddings."""
    return param.ndim < 2 or "norm" in name or "bias" in name or any(k in name for k in NO_DECAY_NAMES)


def param_groups(
    model: nn.Module, weight_decay: float, prefix_lr: Mapping[str, float] | None = None
) -> list[dict[str, object]]:
    """AdamW groups of the trainable parameters (frozen ones are left out): `decay` and `no_decay`, and the same
    two for each name prefix of `prefix_lr` with that learning rate (a schedule scales every group alike)."""
    prefixes = tuple(prefix_lr or {})
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            prefix = next((p for p in prefixes if name.startswith(p)), "")
            groups.setdefault((prefix, exclude_from_decay(name, param)), []).append(param)
    out: list[dict[str, object]] = []
    for prefix in ("", *prefixes):
        for no_decay in (True, False):
            params = groups.get((prefix, no_decay), [])
            if prefix and not params:
                continue
            group: dict[str, object] = {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": ("no_decay" if no_decay else "decay") + (f":{prefix}" if prefix else ""),
            }
            if prefix:
                group["lr"] = prefix_lr[prefix]  # type: ignore[index]
            out.append(group)
    return out


def create_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98),
                     eps: float = 1e-6, prefix_lr: Mapping[str, float] | None = None) -> AdamW:  # fmt: skip
    """AdamW over `param_groups` (open_clip's CLIP betas and eps); `prefix_lr`: other learning rates by name prefix."""
    return AdamW(param_groups(model, weight_decay, prefix_lr), lr=lr, betas=betas, eps=eps)
