"""`PretrainConfig`: the `pretrain` block of `params.yaml` as a strict frozen dataclass.

Two stages share one model and one output folder:
- **A, supervised warm-up** (arXiv 2509.13175): vision tower + linear head, BCE on the report labels with
  uncertain labels masked; on by default (`enabled: auto`) when the label table exists.
- **B, contrastive** (HLIP): CLIP or SigLIP between studies and reports; the vision tower starts from stage
  A's `visual.*` weights when A ran.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, from_dict, to_dict
from hlip.data.augment import AugmentPolicy
from hlip.data.sampling import ScanPolicy, TextPolicy
from hlip.models.config import STEM_HEADS


@dataclass(frozen=True)
class DataConfig:
    """Where the studies and labels come from and how an item is drawn.

    Attributes:
        ingest_dir: Ingest output root; the part folder is `ingest_dir / part`.
        part: Part to train on.
        labels_dir: Label stage output root; the table is `labels_dir / part / labels.parquet`.
        findings: Finding list (a packaged name such as `brain_mri`, or a YAML path) that orders the label
            columns; empty: the findings present in the table, sorted.
        scans: Scan policy of training items.
        text: Report policy of training items.
        augment: Image augmentation of training items (translation, contrast; `hlip.data.augment`). Off by default.
        shards: A pack of the part (`hlip pack`): a folder or `s3://bucket/prefix`. When set,
            training reads the studies' manifests and volumes from it (by byte range) instead of the part folder;
            the items, their order and the weights are the same. Empty: the part folder's `.npy` volumes.
    """

    ingest_dir: Path = Path("outputs/ingest")
    part: str = "train"
    labels_dir: Path = Path("outputs/labels")
    findings: str = ""
    scans: ScanPolicy = field(default_factory=ScanPolicy)
    text: TextPolicy = field(default_factory=TextPolicy)
    augment: AugmentPolicy = field(default_factory=AugmentPolicy)
    shards: str = ""

    @property
    def part_dir(self) -> Path:
        """The ingested part folder."""
        return self.ingest_dir / self.part

    @property
    def labels_file(self) -> Path:
        """The long label table of the part."""
        return self.labels_dir / self.part / "labels.parquet"


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    Attributes:
        enabled: `auto` (stage A: on when the label table exists; stage B: on), `true` or `false`.
        epochs: Passes over the training studies.
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW decay of weight matrices (norms, biases, temperature and embeddings get none).
        warmup_steps: Linear warm-up (optimizer steps) before the cosine decay to `min_lr`.
        min_lr: Final learning rate of the cosine schedule.
        loss: `bce` (stage A), `clip` or `siglip` (stage B).
        label_targets: Stage B with `clip`: share of each study's target given to the batch's studies whose report
            labels agree with its own (`ClipLoss`; MedCLIP's semantic matching). 0 is plain CLIP; above 0 needs
            the label table of stage A.
        stem_supervision: Weight of a BCE on the report labels from each study's strongest stem response (the
            maximum over its scans' patch-embedding tokens -> BatchNorm -> linear; `hlip.models.stem_head`), added
            to the stage's loss. Deep supervision of the tokeniser: its gradient reaches the stem without passing
            through the attention blocks. In stage A the head is `HLIPClassifier(stem_head=True)`'s; in stage B it
            is stage A's head carried on (a new one at the label prior without it), which needs the label table.
            0 is off; no exported model has the head.
        stem_head: The stem head's form (`hlip.models.config.STEM_HEADS`): `linear` classifies the study's
            strongest response (the maximum over its scans); `scan_mlp` runs a small MLP on each scan's strongest
            response and takes the maximum of the logits over the study's scans, so channels combine within a scan
            (the response can count by the scan's own contrast) before scans are merged; `linear_and_scan_mlp` trains
            both heads side by side, each with its own BCE (their mean, times the weight). With stem supervision in both
            stages, both must name the same form (stage B carries stage A's head on).
        freeze_stem: The first N convolutions of the vision tower's convolutional stem, each with its BatchNorm and
            activation, are not trained in this stage, and their BatchNorm keeps its running statistics
            (`PatchEmbed3D.lock_stem`); 0 trains the whole stem. In stage B it keeps what stage A taught those
            layers and skips their backward pass (the first convolution's, at full resolution, is the costliest
            part of a CPU step). At most the model's stem convolutions.
        text_lr: Learning rate of the text trunk's trainable layers (`text.unfrozen_layers`, or a trunk not frozen),
            on the same schedule as `lr` (warm-up, cosine to `min_lr` scaled alike); None: `lr`. A pretrained
            trunk usually wants one far below a new projection's.
    """

    enabled: str = "auto"
    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr: float = 0.0
    loss: str = "clip"
    label_targets: float = 0.0
    stem_supervision: float = 0.0
    stem_head: str = "linear"
    freeze_stem: int = 0
    text_lr: float | None = None

    def __post_init__(self) -> None:
        if str(self.enabled).lower() not in ("auto", "true", "false"):
            raise ConfigError(f"stage enabled must be auto, true or false, got {self.enabled!r}")
        if self.epochs < 0 or self.lr <= 0 or self.warmup_steps < 0:
            raise ConfigError(f"stage needs epochs >= 0, lr > 0, warmup_steps >= 0 (got {self})")
        if self.loss not in ("bce", "clip", "siglip"):
            raise ConfigError(f"stage loss must be bce, clip or siglip, got {self.loss!r}")
        if not 0.0 <= self.label_targets <= 1.0:
            raise ConfigError(f"stage label_targets must lie in [0, 1], got {self.label_targets}")
        if self.label_targets > 0.0 and self.loss != "clip":
            raise ConfigError(f"label_targets works with the clip loss only, not {self.loss!r}")
        if isinstance(self.freeze_stem, bool) or self.freeze_stem < 0:  # `true` is not "all": say how many
            raise ConfigError(f"stage freeze_stem counts stem convolutions and must be >= 0, got {self.freeze_stem!r}")
        if self.text_lr is not None and not (math.isfinite(self.text_lr) and self.text_lr > 0):
            raise ConfigError(
                f"stage text_lr must be a learning rate > 0 (or null: the stage's lr), got {self.text_lr}"
            )
        if self.stem_head not in STEM_HEADS:
            raise ConfigError(f"stage stem_head must be one of {', '.join(STEM_HEADS)}, got {self.stem_head!r}")
        if not math.isfinite(self.stem_supervision) or self.stem_supervision < 0.0:
            raise ConfigError(f"stage stem_supervision must be a finite weight >= 0, got {self.stem_supervision}")


@dataclass(frozen=True)
class PretrainConfig:
    """The `pretrain` block.

    Attributes:
        model: Registered model config name (`hlip-demo`, `hlip-tiny`, ...).
        model_overrides: Nested mapping deep-merged into the model's JSON.
        init: Local 2D ViT state dict (timm layout, e.g. ImageNet MAE) that initialises the vision tower as
            upstream HLIP starts pre-training (`hlip.models.mae_init`); None: random initialisation.
        data: Data sources and item policies.
        warmup: Stage A (supervised, `loss: bce`).
        contrastive: Stage B (`loss: clip | siglip`).
        batch_size: Studies per optimizer step and process before accumulation (global batch =
            `batch_size * accum_steps * world_size`).
        accum_steps: Micro-batches accumulated per optimizer step.
        grad_clip: Max global gradient norm (0: off).
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `fp32`, `bf16` or `fp16` (with GradScaler).
        patch_dropout: Overrides the model's patch dropout during training (None: keep the model's).
        grad_checkpointing: Recompute activations in the backward pass.
        workers: DataLoader worker processes.
        seed: Seed of everything (model init, data order, augmentation).
        deterministic: `torch.use_deterministic_algorithms(True)` and deterministic cuDNN.
        threads: torch intra-op threads on CPU (0: torch's default).
        checkpoint_every: Optimizer steps between checkpoints (0: only at the end of each epoch).
        keep_last: Checkpoints kept in `out/checkpoints`.
        eval_every: Epochs between calls of the in-loop evaluator (0: never).
        log_every: Optimizer steps between metric logs.
        out: Output folder (checkpoints, final model, summary).
    """

    model: str = "hlip-demo"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    warmup: StageConfig = field(default_factory=lambda: StageConfig(loss="bce"))
    contrastive: StageConfig = field(default_factory=lambda: StageConfig(enabled="true", loss="clip"))
    batch_size: int = 16
    accum_steps: int = 1
    grad_clip: float = 1.0
    precision: str = "auto"
    patch_dropout: float | None = None
    grad_checkpointing: bool = False
    workers: int = 2
    seed: int = 0
    deterministic: bool = False
    threads: int = 0
    checkpoint_every: int = 0
    keep_last: int = 2
    eval_every: int = 1
    log_every: int = 1
    out: Path = Path("outputs/pretrain")

    def __post_init__(self) -> None:
        if self.warmup.loss != "bce":
            raise ConfigError(f"pretrain.warmup.loss must be bce, got {self.warmup.loss!r}")
        if self.contrastive.loss not in ("clip", "siglip"):
            raise ConfigError(f"pretrain.contrastive.loss must be clip or siglip, got {self.contrastive.loss!r}")
        if self.batch_size < 1 or self.accum_steps < 1 or self.keep_last < 1:
            raise ConfigError("pretrain: batch_size, accum_steps and keep_last must be >= 1")
        if (
            self.warmup.stem_supervision > 0
            and self.contrastive.stem_supervision > 0
            and self.warmup.stem_head != self.contrastive.stem_head
        ):  # stage B carries stage A's head on, and a resume inside stage B rebuilds it from `contrastive`
            raise ConfigError(
                f"pretrain: stage B carries stage A's stem head on, so contrastive.stem_head "
                f"({self.contrastive.stem_head!r}) must equal warmup.stem_head ({self.warmup.stem_head!r})"
            )
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"pretrain.precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")

    @classmethod
    def from_params(cls, block: Mapping[str, Any], where: str = "params.yaml:pretrain") -> PretrainConfig:
        """Build from the `pretrain` block, rejecting unknown keys (the message names the key)."""
        data = dict(block)
        for stage in ("warmup", "contrastive"):  # a stage block fills in its own default loss
            if isinstance(data.get(stage), Mapping) and "loss" not in data[stage]:
                data[stage] = {**data[stage], "loss": "bce" if stage == "warmup" else "clip"}
            if isinstance(data.get(stage), Mapping) and "enabled" in data[stage]:
                data[stage] = {**data[stage], "enabled": str(data[stage]["enabled"]).lower()}
        try:
            return from_dict(cls, data, where=where)
        except ConfigError:
            raise
        except ValueError as exc:  # the scan/text policies raise ValueError on bad values
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (the MLflow params, the checkpoint's record)."""
        return to_dict(self)

    def training_hash(self) -> str:
        """Hash of everything that decides the trained weights (not workers, logging or output settings).

        A checkpoint resumes only under a config with the same hash (epochs count: they shape the schedule).
        """
        doc = self.to_dict()
        for key in ("workers", "checkpoint_every", "keep_last", "eval_every", "log_every", "out", "threads"):
            doc.pop(key, None)
        doc["data"].pop("shards", None)  # where the bytes are read from; the data digest covers what they are
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
