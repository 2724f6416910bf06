"""HLIP vision tower: a ViT over 3D patches whose blocks attend at the slice, scan or study level.

Input is a batch of studies `x: [B, N, 1, D, H, W]` and an optional `scan_mask: [B, N]` (True = real scan).

1. Padded scans are dropped (`packing`), the S real scans are z-scored (`input_norm`), tokenised
   (`patch_embed`) and get frozen sin-cos positions (`pos_embed`): `[S, d, h*w, C]`; patch dropout keeps the
   same number of tokens in every slab, so every level still regroups by reshaping.
2. Each block attends within the groups of its level (`cfg.levels`); between blocks of different levels
   the tokens are regrouped (`hierarchy.TokenLayout`), prefix tokens averaged or copied.
3. After the last block the prefix tokens are merged to the study level and normalised; the study feature
   is the CLS token (`pool="cls"`) or, with DINO.txt (`pool="dinotxt"`), one row per prefix token (the token
   concatenated with the mean patch token) of which row `pool_row` is the study's (`forward_rows` gives all),
   or, with attention pooling (`pool="map"`, `attn_pool.py`), the CLS token joined to learned queries' reads of
   every patch token of the study,
   then projected to the shared embedding by `head` (and, with `embed_norm="batchnorm"`,
   standardised over the batch: `embed_norm.py`).

With every level set to `study` the same code is a plain full-attention 3D ViT, for comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hlip.models.attn_pool import AttentionPool
from hlip.models.block import Block, init_vit_weights
from hlip.models.config import VisionConfig
from hlip.models.embed_norm import EmbedBatchNorm
from hlip.models.hierarchy import AttentionGroups, TokenLayout
from hlip.models.packing import StudyPacking, pack_scans
from hlip.models.patch_embed import PatchEmbed3D
from hlip.models.pos_embed import PosEmbed3D
from hlip.models.stem_head import StemResponse


def zscore(scans: Tensor, eps: float = 1e-5) -> Tensor:
    """Each scan of `[S, 1, D, H, W]` to zero mean and unit variance over its voxels (a constant scan to zeros)."""
    dims = tuple(range(1, scans.dim()))
    mean = scans.mean(dim=dims, keepdim=True)
    std = scans.std(dim=dims, keepdim=True, unbiased=False)
    return (scans - mean) / (std + eps)


#: Upstream HLIP's input normalisation of [0, 1] intensities: the means over RGB of timm's ImageNet mean
#: (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), as its loaders apply them to one-channel scans.
IMAGENET_GRAY_MEAN = (0.485 + 0.456 + 0.406) / 3
IMAGENET_GRAY_STD = (0.229 + 0.224 + 0.225) / 3

#: Intensity above which a voxel counts as foreground (head, body) for `zscore_foreground`, on the [0, 1] scale.
FOREGROUND_LEVEL = 0.05


def zscore_foreground(scans: Tensor, level: float = FOREGROUND_LEVEL, eps: float = 1e-5) -> Tensor:
    """Each scan of `[S, 1, D, H, W]` z-scored over its foreground voxels, with the background set to 0.

    nnU-Net's normalisation of MR images: the mean and spread come from the voxels above `level` (the head), so
    they do not depend on how much air the field of view holds, and the background stays a constant 0 instead
    of a scan-dependent negative value. A scan with no foreground becomes zeros.
    """
    dims = tuple(range(1, scans.dim()))
    fg = (scans > level).to(scans.dtype)
    count = fg.sum(dim=dims, keepdim=True).clamp(min=1.0)
    mean = (scans * fg).sum(dim=dims, keepdim=True) / count
    std = (((scans - mean) ** 2) * fg).sum(dim=dims, keepdim=True).div(count).sqrt()
    return (scans - mean) / (std + eps) * fg


def erode_foreground(scans: Tensor, voxels: int, level: float = FOREGROUND_LEVEL) -> Tensor:
    """`[S, 1, D, H, W]` with every voxel outside the foreground (above `level`) eroded by `voxels` set to 0.

    Erosion by the 6-connected cross, `voxels` times, with the outside of the volume counting as background: what
    `scipy.ndimage.binary_erosion(scans > level, iterations=voxels)` keeps. On a brain MRI it takes off the scalp,
    whose bright rim otherwise gives a patch its strongest response in place of a lesion (docs/demo-model.md,
    session 23). A select, not a product with the mask: an exact 0 outside whatever the value there (NaN, -0.0),
    and 6x faster than the bool-to-float multiply on a training batch.
    """
    inside = scans > level
    for _ in range(voxels):
        eroded = inside.clone()
        for axis in (-3, -2, -1):
            n = inside.shape[axis]
            eroded.narrow(axis, 1, n - 1).logical_and_(inside.narrow(axis, 0, n - 1))  # the neighbour before
            eroded.narrow(axis, 0, n - 1).logical_and_(inside.narrow(axis, 1, n - 1))  # the neighbour after
            eroded.narrow(axis, 0, 1).fill_(False)  # the outside of the volume is background
            eroded.narrow(axis, n - 1, 1).fill_(False)
        inside = eroded
    return torch.where(inside, scans, 0.0)


class VisionTransformer3D(nn.Module):
    """Hierarchical-attention 3D ViT (timm attribute names).

    Args:
        cfg: Architecture.
        embed_dim: Output size of the projection `head` (the shared image-text embedding).
    """

    def __init__(self, cfg: VisionConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.width
        self.patch_embed = PatchEmbed3D(
            cfg.patch_size,
            C,
            stem_channels=cfg.stem_channels,
            stem_downsample=cfg.stem_downsample,
            norm=cfg.patch_norm,
            stem_pool=cfg.stem_pool,
        )
        self.pos_embed = PosEmbed3D(cfg.grid_size, C, cfg.max_scans)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, C)) if cfg.reg_tokens else None
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linear, 0 -> drop_path
        self.blocks = nn.ModuleList(Block(C, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, rate) for rate in rates)
        self.norm = nn.LayerNorm(C, eps=1e-6)
        self.attn_pool = AttentionPool(C, cfg.heads, cfg.pool_queries) if cfg.pool == "map" else None
        self.head = nn.Linear(cfg.num_features, embed_dim, bias=False)
        self.embed_norm: nn.Module = EmbedBatchNorm(embed_dim) if cfg.embed_norm == "batchnorm" else nn.Identity()
        self.grad_checkpointing = False
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def forward(self, x: Tensor, scan_mask: Tensor | None = None) -> Tensor:
        """Study embeddings `[B, embed_dim]` of `x: [B, N, 1, D, H, W]` (unnormalised): float intensities in
        [0, 1], or the loader's uint8 volumes (0..255, scaled to [0, 1] after the move to the device, so a batch
        crosses processes and the host-to-device copy at a quarter of the float32 bytes)."""
        return self.embed_norm(self.head(self.forward_features(x, scan_mask)))

    def forward_rows(self, x: Tensor, scan_mask: Tensor | None = None) -> Tensor:
        """Every output row, projected: `[B, R, embed_dim]` (R = 1 for `cls`, the prefix tokens for `dinotxt`).

        Upstream's `*_dualdinotxt*` towers return these rows; the study embedding is row `cfg.pool_row`.
        """
        return self.head(self.forward_feature_rows(x, scan_mask))

    def forward_features(self, x: Tensor, scan_mask: Tensor | None = None) -> Tensor:
        """Pooled study features `[B, num_features]` before the projection head (row `cfg.pool_row`)."""
        return self.forward_feature_rows(x, scan_mask)[:, self.cfg.pool_row]

    def forward_feature_rows(self, x: Tensor, scan_mask: Tensor | None = None) -> Tensor:
        """Pooled study feature rows `[B, R, num_features]` before the projection head."""
        return self._encode(x, scan_mask, stem_max=False)[0]

    def forward_with_stem(self, x: Tensor, scan_mask: Tensor | None = None) -> tuple[Tensor, StemResponse]:
        """Study embeddings `[B, embed_dim]` (as `forward`) and each scan's strongest stem response (`StemResponse`).

        The stem response is the patch embedding's output (before positions, patch dropout and any block): the
        maximum over every token of each real scan, per channel, with the scans' grouping into studies. Stage A's
        deep supervision of the tokeniser (`pretrain.warmup.stem_supervision`) classifies it, so the stem gets a
        gradient that no attention block has mixed.
        """
        rows, stem = self._encode(x, scan_mask, stem_max=True)
        assert stem is not None
        return self.embed_norm(self.head(rows[:, self.cfg.pool_row])), stem

    def _encode(self, x: Tensor, scan_mask: Tensor | None, stem_max: bool) -> tuple[Tensor, StemResponse | None]:
        packing = StudyPacking.from_batch(x, scan_mask)
        tokens = self._stem(pack_scans(x, scan_mask))  # [S, d, h, w, C]
        stem = StemResponse(tokens.amax(dim=(1, 2, 3)), packing) if stem_max else None  # [S, C] per scan
        patches = self._position(tokens, packing)  # [S, d, t, C]
        layout = TokenLayout(packing, self.cfg.num_prefix_tokens, patches.shape[1], patches.shape[2])
        level = self.cfg.levels[0]
        x = layout.join(self._prefix(layout.num_groups(level)), patches, level)
        for blk, next_level in zip(self.blocks, self.cfg.levels, strict=True):
            x = layout.regroup(x, level, next_level)
            level = next_level
            x = self._run_block(blk, x, layout.groups(level))
        return self._pool(x, level, layout), stem

    def _stem(self, scans: Tensor) -> Tensor:
        """Packed scans `[S, 1, D, H, W]` -> patch tokens `[S, d, h, w, C]` (input normalisation, patch embedding)."""
        if scans.dtype == torch.uint8:  # the loader's volumes: converted here, on the model's device
            scans = scans.to(torch.float32).div_(255.0)
        if self.cfg.foreground_erosion:
            scans = erode_foreground(scans, self.cfg.foreground_erosion)
        if self.cfg.input_norm == "zscore":
            scans = zscore(scans)
        elif self.cfg.input_norm == "zscore_foreground":
            scans = zscore_foreground(scans)
        elif self.cfg.input_norm == "imagenet_gray":
            scans = (scans - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD
        out: Tensor = self.patch_embed(scans)  # [S, d, h, w, C]
        return out

    def _position(self, x: Tensor, packing: StudyPacking) -> Tensor:
        """Patch tokens `[S, d, h, w, C]` -> positioned tokens `[S, d, t, C]` (after patch dropout in training)."""
        S, d, h, w, C = x.shape
        x = x + self.pos_embed((d, h, w), packing)  # [S, d, h, w, C]
        x = x.reshape(S, d, h * w, C)  # [S, d, h*w, C]
        return self._patch_dropout(x)

    def _patch_dropout(self, x: Tensor) -> Tensor:
        """Keep the same random subset size in every slab: `[S, d, h*w, C] -> [S, d, t, C]`."""
        if not self.training or self.cfg.patch_dropout == 0.0:
            return x
        S, d, n, C = x.shape
        keep = max(1, int(n * (1.0 - self.cfg.patch_dropout)))
        index = torch.rand(S, d, n, device=x.device).argsort(dim=-1)[..., :keep].sort(dim=-1).values  # [S, d, t]
        return x.gather(2, index[..., None].expand(S, d, keep, C))  # [S, d, t, C]

    def _prefix(self, num_groups: int) -> Tensor:
        """CLS (+ register) tokens for every group: `[G, P, C]`."""
        prefix = self.cls_token if self.reg_token is None else torch.cat([self.cls_token, self.reg_token], dim=1)
        return prefix.expand(num_groups, -1, -1)  # [G, P, C]

    def _run_block(self, blk: nn.Module, x: Tensor, groups: AttentionGroups | None) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            out: Tensor = checkpoint(blk, x, groups, use_reentrant=False)
            return out
        result: Tensor = blk(x, groups)
        return result

    def _pool(self, x: Tensor, level: str, layout: TokenLayout) -> Tensor:
        """Study feature rows from the last block's tokens: `[B, 1, C]` (cls), `[B, P, 2C]` (dinotxt) or
        `[B, 1, (1 + Q) C]` (map)."""
        prefix, patches = layout.split(x, level)  # [G, P, C], [S, d, t, C]
        prefix = self.norm(layout.move_prefix(prefix, level, "study"))  # [B, P, C]
        if self.cfg.pool == "cls":
            return prefix[:, :1]  # [B, 1, C]
        if self.attn_pool is not None:
            pool = self.attn_pool
            tokens = self.norm(patches).flatten(1, 2)  # [S, d*t, C]
            read = layout.packing.per_study(tokens, lambda scans: pool(scans.flatten(1, 2)))  # [B, Q*C]
            return torch.cat([prefix[:, :1], read[:, None]], dim=-1)  # [B, 1, (1+Q)C]
        patch_mean = layout.packing.study_mean(self.norm(patches).mean(dim=(1, 2)))  # [B, C]
        # DINO.txt: every prefix token joined to the same mean patch token, one row each
        return torch.cat([prefix, patch_mean[:, None].expand_as(prefix)], dim=-1)  # [B, P, 2C]
