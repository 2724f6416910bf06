"""Initialise a 3D vision tower from a 2D ViT (ImageNet MAE, timm layout), as upstream HLIP starts pre-training.

Upstream builds its towers with `pretrained=True` from timm's `vit_base_patch16_224.mae` / `vit_large_patch16_224.mae`
and converts the 2D weights while loading (its `custom_checkpoint_filter_fn`); restated here:

- `pos_embed [1, 1 + n*n, C]` with a CLS row: the CLS row is added to `cls_token` and dropped;
- the 2D grid `n x n` is resampled bicubically (antialiased, timm's `resample_abs_pos_embed`) to the tower's
  in-plane grid `h x w` and a 1D sin-cos over the `d` slabs (all C channels) is added: the frozen spatial table
  `[1, d, h, w, C]` replaces the 3D sin-cos one;
- the patch kernel `[C, 3, p, p]` is resized bicubically to `(ph, pw)` when it differs, summed over the RGB
  channels and repeated over the `pd` slices divided by `pd` ("average inflation": a constant scan gives the same
  response as the 2D kernel on a grey image);
- blocks, final norm and patch bias are copied. Register tokens, the scan-index table and the projection head keep
  their initialisation, and keys of the file that the tower has no place for (MAE's decoder, a classifier) are
  reported, not loaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from hlip.models.pos_embed import sincos_1d
from hlip.models.visual import VisionTransformer3D
from hlip.models.weights import load_state_dict_file

log = logging.getLogger(__name__)


@dataclass
class InitReport:
    """What `init_from_2d_vit` did: the tower keys it set and the file keys it had no place for."""

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def inflate_patch_kernel(weight: Tensor, patch_size: tuple[int, int, int]) -> Tensor:
    """`[C, c_in, p, p]` -> `[C, 1, pd, ph, pw]`: bicubic resize in plane, channels summed, averaged over depth."""
    pd, ph, pw = patch_size
    if tuple(weight.shape[2:]) != (ph, pw):
        weight = F.interpolate(weight.float(), size=(ph, pw), mode="bicubic")  # [C, c_in, ph, pw]
    return weight.sum(dim=1, keepdim=True).unsqueeze(2).repeat(1, 1, pd, 1, 1) / pd  # [C, 1, pd, ph, pw]


def spatial_from_2d(pos_embed: Tensor, grid_size: tuple[int, int, int]) -> Tensor:
    """A 2D table `[1, n*n, C]` (no prefix rows) -> the 3D spatial table `[1, d, h, w, C]`."""
    d, h, w = grid_size
    n, C = math.isqrt(pos_embed.shape[1]), pos_embed.shape[2]
    table = pos_embed.float()
    if (n, n) != (h, w):
        grid = table.reshape(1, n, n, C).permute(0, 3, 1, 2)  # [1, C, n, n]
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)  # [1, C, h, w]
        table = grid.permute(0, 2, 3, 1).reshape(1, h * w, C)
    in_plane = table.reshape(1, h, w, C)
    depth = sincos_1d(torch.arange(d), C)  # [d, C]
    return depth[None, :, None, None, :] + in_plane[:, None]  # [1, d, h, w, C]


def init_from_2d_vit(visual: VisionTransformer3D, source: str | Path | Mapping[str, Tensor]) -> InitReport:
    """Set `visual`'s patch embedding, positions, CLS token, blocks and norm from a 2D ViT state dict.

    Raises:
        ValueError: The tower has a convolutional stem (no 2D counterpart), or the file lacks a block or norm
            tensor of the tower, or a tensor's shape differs (the message names it).
    """
    cfg = visual.cfg
    if cfg.stem_channels:
        raise ValueError("2D ViT initialisation needs the linear patch embedding (vision.stem_channels: [])")
    state = load_state_dict_file(source) if isinstance(source, str | Path) else dict(source)
    state = {k.removeprefix("visual.trunk."): v for k, v in state.items()}
    for key in ("pos_embed", "cls_token", "patch_embed.proj.weight"):
        if key not in state:
            raise ValueError(f"2D ViT state dict lacks {key!r}; is it a timm VisionTransformer?")
    pos, cls = state["pos_embed"], state["cls_token"]
    if math.isqrt(pos.shape[1]) ** 2 != pos.shape[1]:  # a CLS row: fold it into the token, as upstream
        cls, pos = cls + pos[:, :1], pos[:, 1:]
    new: dict[str, Tensor] = {
        "cls_token": cls,
        "pos_embed.spatial": spatial_from_2d(pos, cfg.grid_size),
        "patch_embed.proj.weight": inflate_patch_kernel(state["patch_embed.proj.weight"], cfg.patch_size),
    }
    report = InitReport()
    for key, tensor in state.items():
        if key.startswith(("blocks.", "norm.")) or key == "patch_embed.proj.bias":
            new[key] = tensor
        elif key not in ("pos_embed", "cls_token", "patch_embed.proj.weight"):
            report.ignored.append(key)
    own = visual.state_dict()
    wanted = [k for k in own if k.startswith(("blocks.", "norm.")) or k == "patch_embed.proj.bias"]
    missing = [k for k in wanted if k not in new]
    unknown = [k for k in new if k not in own]
    bad = [
        f"{k}: file {tuple(v.shape)} vs tower {tuple(own[k].shape)}"
        for k, v in new.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unknown or bad:
        raise ValueError(f"2D ViT does not fit the tower: missing {missing}, unknown {unknown}, mis-shaped {bad}")
    visual.load_state_dict(new, strict=False)
    report.loaded = sorted(new)
    log.info("2D ViT init: %d tensors set, %d file keys ignored", len(report.loaded), len(report.ignored))
    return report
