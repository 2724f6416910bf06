"""Import upstream HLIP checkpoints (open_clip + timm layout) into `HLIP` models, and save safetensors.

Upstream trains with open_clip: a `CustomTextCLIP` whose vision tower is a timm `VisionTransformer`
subclass wrapped by open_clip's `TimmModel` (`visual.trunk.*`, projection `visual.head.proj`) and whose text
tower is open_clip's `HFTextEncoder` (`text.transformer.*` = the HF BERT, `text.proj`). The frozen sin-cos
tables are parameters of the trunk (`spatial_posemb [1, d, h, w, C]`, `sequential_posemb [1, M, C]`).
Training checkpoints are dicts with `state_dict` (keys prefixed `module.` under DDP); hub exports are
safetensors of the same state dict.

Files are read with `safetensors` or `torch.load(weights_only=True)`; nothing is unpickled blindly.
Keys that match no rule pass through unchanged, so checkpoints already in this package's layout load too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# (upstream pattern, our replacement); first match wins.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^visual\.trunk\.spatial_posemb$", "visual.pos_embed.spatial"),
    (r"^visual\.trunk\.sequential_posemb$", "visual.pos_embed.scan"),
    (r"^visual\.trunk\.(cls_token|reg_token)$", r"visual.\1"),
    (r"^visual\.trunk\.patch_embed\.proj\.(weight|bias)$", r"visual.patch_embed.proj.\1"),
    (r"^visual\.trunk\.blocks\.(\d+)\.(.+)$", r"visual.blocks.\1.\2"),
    (r"^visual\.trunk\.norm\.(weight|bias)$", r"visual.norm.\1"),
    (r"^visual\.head\.proj\.(weight|bias)$", r"visual.head.\1"),
    (r"^text\.transformer\.(.+)$", r"text.transformer.\1"),
    (r"^text\.proj\.(weight|bias)$", r"text.proj.\1"),
)
# Upstream keys that carry nothing this model uses (HF position-id buffers, an unused BERT pooler).
IGNORED_KEYS: tuple[str, ...] = (r"\.position_ids$", r"^text\.transformer\.pooler\.")


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        loaded: Model keys filled from the checkpoint.
        missing: Model keys the checkpoint did not provide (left as they were).
        unexpected: Checkpoint keys (after mapping) the model does not have (not loaded).
        ignored: Checkpoint keys dropped on purpose (`IGNORED_KEYS`, or outside the selected prefixes).
        inflated: 2D patch-embedding weights inflated to 3D.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing was missing or unexpected."""
        return not self.missing and not self.unexpected

    def summary(self) -> str:
        """Human-readable multi-line report."""
        lines = [f"loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "ignored", "inflated"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name} ({len(keys)}): " + ", ".join(keys))
        return "\n".join(lines)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file: safetensors, or a torch file read with `weights_only=True`.

    Training dicts are unwrapped (`state_dict`, then `model`), and a DDP `module.` prefix is stripped.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path))
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: no state dict found (got {type(obj).__name__})")
    return strip_prefix({k: v for k, v in obj.items() if isinstance(v, Tensor)}, "module.")


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove `prefix` from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def map_key(key: str) -> str:
    """Our key for an upstream key (unchanged when no rule matches)."""
    for pattern, replacement in KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return key


def inflate_patch_weight(weight: Tensor, target_shape: tuple[int, ...]) -> Tensor:
    """Inflate a 2D patch projection `[C, c_in, ph, pw]` to 3D `[C, 1, pd, ph, pw]` (upstream's average
    inflation: channels summed, repeated over depth, divided by pd)."""
    C, _, pd, ph, pw = target_shape
    if weight.shape[0] != C or tuple(weight.shape[2:]) != (ph, pw):
        raise ValueError(f"cannot inflate patch weight {tuple(weight.shape)} to {target_shape}")
    return weight.sum(dim=1, keepdim=True).unsqueeze(2).repeat(1, 1, pd, 1, 1) / pd  # [C, 1, pd, ph, pw]


def import_upstream_checkpoint(
    model: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    prefixes: tuple[str, ...] = ("visual.", "text.", "logit_scale", "logit_bias"),
    strict: bool = False,
) -> ImportReport:
    """Load an upstream HLIP (or own) checkpoint into `model`.

    Args:
        model: An `HLIP` (or `HLIPClassifier`, for `visual.*`) model.
        source: Checkpoint file (`.safetensors`, or a torch file) or an already loaded state dict.
        prefixes: Only mapped keys starting with one of these are imported (e.g. `("visual.",)`).
        strict: Raise instead of loading when any key is missing or unexpected.

    Returns:
        The report (also logged).

    Raises:
        ValueError: A tensor's shape differs from the model's (the message names it); with `strict`,
            missing or unexpected keys.
    """
    state = load_state_dict_file(source) if isinstance(source, str | Path) else strip_prefix(source, "module.")
    own = model.state_dict()
    report, mapped = ImportReport(), {}
    for src_key, tensor in state.items():
        key = map_key(src_key)
        if any(re.search(p, src_key) for p in IGNORED_KEYS) or not key.startswith(prefixes):
            report.ignored.append(src_key)
        elif key not in own:
            report.unexpected.append(src_key if key == src_key else f"{src_key} -> {key}")
        else:
            mapped[key] = _fit_shape(src_key, key, tensor, own[key], report)
    report.missing = sorted(k for k in own if k.startswith(prefixes) and k not in mapped)
    if strict and not report.complete:
        raise ValueError("checkpoint does not match the model:\n" + report.summary())
    model.load_state_dict(mapped, strict=False)
    report.loaded = sorted(mapped)
    log.info("checkpoint import: %s", report.summary())
    return report


def _fit_shape(src_key: str, key: str, tensor: Tensor, target: Tensor, report: ImportReport) -> Tensor:
    """The tensor to load for `key`; 2D patch weights are inflated, other mismatches refused."""
    if tensor.shape == target.shape:
        return tensor
    if key.endswith("patch_embed.proj.weight") and tensor.ndim == 4 and target.ndim == 5:
        report.inflated.append(src_key)
        return inflate_patch_weight(tensor, tuple(target.shape))
    raise ValueError(
        f"shape mismatch for {src_key} (-> {key}): checkpoint {tuple(tensor.shape)}, model {tuple(target.shape)}"
    )


def save_safetensors(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as safetensors (contiguous CPU copies)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path
