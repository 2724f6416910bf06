"""Pre-training end to end: supervised warm-up (stage A), contrastive alignment (stage B), export.

```python
from hlip.training import PretrainConfig, run_pretrain

result = run_pretrain(PretrainConfig.from_params(block))   # resumes from out/checkpoints when present
result.model_dir                                            # out/model: hlip.models.export.load_model(...)
```

The same call runs under `torchrun` (one process per device, DDP). It resumes from the newest checkpoint in
`out/checkpoints` whose config hash matches and refuses one that does not. Rank 0 writes the checkpoints,
the exported model (`out/model`), the warm-up head (`out/warmup`) and `out/summary.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hlip.config import ConfigError, from_dict
from hlip.data.contract import ContractError, StudyContract
from hlip.data.dataset import StudyDataset, make_loader, positive_rates
from hlip.data.preprocess import PreprocessConfig
from hlip.models.clip import HLIP, HLIPClassifier
from hlip.models.config import ModelConfig, merge_overrides
from hlip.models.export import save_model
from hlip.models.factory import create_tokenizer, get_model_config
from hlip.models.loss import ClipLoss, create_loss
from hlip.models.mae_init import init_from_2d_vit
from hlip.models.patch_embed import PatchEmbed3D
from hlip.models.stem_head import StemHead, init_prior_bias
from hlip.models.text import TextTower
from hlip.training.checkpoint import (
    CheckpointMismatchError,
    CheckpointWriter,
    Position,
    latest_checkpoint,
    load_checkpoint,
    mark_complete,
    position_of,
    resumable,
    rng_state,
    set_rng_state,
    training_code_digest,
)
from hlip.training.config import PretrainConfig, StageConfig
from hlip.training.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from hlip.training.hooks import Evaluator, NullLogger, Report, TrainingLogger
from hlip.training.loop import StageResult, TrainingStage, train_stage
from hlip.training.optim import create_optimizer
from hlip.training.schedule import warmup_cosine
from hlip.training.text_features import TextFeatureTable, table_applies

log = logging.getLogger(__name__)

WARMUP, CONTRASTIVE = "warmup", "contrastive"


@dataclass(frozen=True)
class PretrainResult:
    """What `run_pretrain` produced (paths are None on ranks other than 0).

    Attributes:
        out: Output folder.
        model_dir: Exported CLIP model (`hlip.models.export.load_model`).
        summary: The content of `out/summary.json`: results only (losses, steps), a function of the inputs, so the
            stage's outputs (summary, checkpoints, model metadata) are byte-identical between runs.
        timings: Wall-clock facts of this process, for MLflow and the run record, never for an output file:
            `stages` (per training stage trained here: `studies_per_s`, `seconds_per_epoch`, ...) and `checkpoints`
            (the writer's totals over both stages).
    """

    out: Path
    model_dir: Path | None
    summary: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)


def resolve_model_config(config: PretrainConfig) -> ModelConfig:
    """The model config with `model_overrides` and the training `patch_dropout` applied."""
    overrides: dict[str, Any] = dict(config.model_overrides)
    if config.patch_dropout is not None:
        overrides = merge_overrides(overrides, {"vision": {"patch_dropout": config.patch_dropout}})
    return get_model_config(config.model, overrides)


def check_model_options(config: PretrainConfig, model_cfg: ModelConfig) -> None:
    """Stage options the model must support, checked before any training.

    Raises:
        ConfigError: A stage freezes more stem convolutions than the model has (none: linear patch embedding).
    """
    convolutions = len(model_cfg.vision.stem_channels)
    for name, stage in ((WARMUP, config.warmup), (CONTRASTIVE, config.contrastive)):
        if stage.freeze_stem > convolutions:
            raise ConfigError(
                f"pretrain.{name}.freeze_stem is {stage.freeze_stem} but the stem of {config.model} has "
                f"{convolutions} convolutions" + (" (it embeds patches linearly)" if not convolutions else "")
            )


def warmup_enabled(config: PretrainConfig) -> bool:
    """Stage A runs when enabled (`auto`: when the label table exists) and has epochs."""
    flag = config.warmup.enabled.lower()
    if flag == "true" and not config.data.labels_file.is_file():
        raise FileNotFoundError(f"pretrain.warmup.enabled is true but {config.data.labels_file} does not exist")
    return flag != "false" and config.warmup.epochs > 0 and config.data.labels_file.is_file()


def labels_used(config: PretrainConfig) -> bool:
    """The label table is read: by stage A, or by stage B's label-similarity targets (`label_targets`) or stem
    supervision (`stem_supervision`).

    Raises:
        FileNotFoundError: Stage B asks for labels and the label table does not exist.
    """
    contrastive = config.contrastive
    stage_b = contrastive.enabled.lower() != "false" and contrastive.epochs > 0
    wanted = [key for key in ("label_targets", "stem_supervision") if stage_b and getattr(contrastive, key) > 0]
    for key in wanted:
        if not config.data.labels_file.is_file():
            raise FileNotFoundError(
                f"pretrain.contrastive.{key} is {getattr(contrastive, key)} but the label table "
                f"{config.data.labels_file} does not exist (run the label stage, or set {key}: 0)"
            )
    return bool(wanted) or warmup_enabled(config)


def load_labels(config: PretrainConfig) -> pd.DataFrame:
    """The part's label matrix (index study_key, finding columns in finding-list order, 1/0/-1/NaN)."""
    from hlip.labels.table import check_label_table, to_matrix

    table = pd.read_parquet(config.data.labels_file)
    if config.data.findings:
        from hlip.labels.finding_list import load_findings

        findings = tuple(load_findings(config.data.findings).names)
    else:
        findings = tuple(sorted(str(f) for f in table["finding"].unique()))
    check_label_table(table, findings)  # the label stage's own check: every finding once per study, 1/0/-1
    return to_matrix(table, findings).astype("float32")


def manifest_dir(config: PretrainConfig) -> Path:
    """The folder holding the training part's manifests: the ingest part folder, or the pack's (`data.shards`; an
    `s3://` pack's manifests are downloaded, its shards stay there)."""
    if not config.data.shards:
        return config.data.part_dir
    from hlip.data.shards import pack_folder

    return pack_folder(config.data.shards)


def training_dataset(config: PretrainConfig, manifests: Path | None = None, **kwargs: Any) -> StudyDataset:
    """The training studies (`StudyDataset` arguments in `kwargs`), read from the part folder or its pack;
    `manifests`: the pack's manifests as `manifest_dir` fetched them (an `s3://` pack's are not fetched again)."""
    if not config.data.shards:
        return StudyDataset(config.data.part_dir, **kwargs)
    from hlip.data.shards import ShardStudyDataset

    return ShardStudyDataset(config.data.shards, manifests=manifests, **kwargs)


def training_data_digest(config: PretrainConfig, manifests: Path | None = None) -> str:
    """sha256 (16 hex digits) of the training part's manifests (studies with their content fingerprints, scans,
    reports) and of the label table when a stage uses it: new, removed or changed studies or labels change it.
    A pack holds copies of its part's manifests, so both sources give the same digest."""
    digest = hashlib.sha256()
    folder = manifests or manifest_dir(config)
    files = [folder / f"{name}.parquet" for name in ("studies", "scans", "reports")]
    if labels_used(config):
        files.append(config.data.labels_file)
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes() if file.is_file() else b"missing")
    return digest.hexdigest()[:16]


def run_pretrain(
    config: PretrainConfig,
    *,
    evaluator: Evaluator | None = None,
    report: Report | None = None,
    report_metric: str | None = None,
    logger: TrainingLogger | None = None,
    preprocess: Mapping[str, Any] | None = None,
    progress: bool = True,
    device: str = "auto",
) -> PretrainResult:
    """Train stage A (if enabled) then stage B, resuming from the newest checkpoint; export the model.

    Args:
        config: The `pretrain` block.
        evaluator: `evaluator(model, step) -> metrics`, called every `eval_every` epochs of stage B.
        report: `report(epoch, value)` after each stage-B epoch that evaluates (Optuna pruning); without an
            evaluator, after every stage-B epoch with its training loss. Its exceptions propagate after that
            epoch's checkpoint is written.
        report_metric: Evaluator metric passed to `report` (default: its only metric).
        logger: Metrics and artifacts sink (rank 0); default: none.
        preprocess: Preprocessing spec stored in the exported model's metadata (e.g. `params.yaml:ingest.preprocess`).
        progress: Progress bar on rank 0.
        device: `auto`, `cpu` or `cuda`.
    """
    info = init_distributed(device)
    logger = logger if logger is not None and info.is_main else NullLogger()
    writer = CheckpointWriter(Path(config.out), config.keep_last)
    try:
        return _run(config, info, writer, evaluator, report, report_metric, logger, preprocess, progress)
    finally:
        try:
            writer.wait()  # a checkpoint in flight reaches the disk (or its error is raised) before we return
        finally:
            cleanup_distributed()


def _run(
    config: PretrainConfig,
    info: DistInfo,
    writer: CheckpointWriter,
    evaluator: Evaluator | None,
    report: Report | None,
    report_metric: str | None,
    logger: TrainingLogger,
    preprocess: Mapping[str, Any] | None,
    progress: bool,
) -> PretrainResult:
    _setup_determinism(config, info)
    out = Path(config.out)
    manifests = manifest_dir(config)
    contract = study_contract(config, preprocess, manifests)  # before training: a disagreement must not cost a run
    model_cfg = resolve_model_config(config)
    check_model_options(config, model_cfg)
    config_hash = config.training_hash()
    data_digest = training_data_digest(config, manifests)
    resume = _resume_state(out, config_hash, data_digest, info)
    position = position_of(resume) if resume else None
    if resume:
        log.info("resuming from %s at %s", out / "checkpoints", position)
        logger.set_tags({"resumed_from_step": position.global_step if position else 0})
    labels = load_labels(config) if labels_used(config) else None
    findings = tuple(str(c) for c in labels.columns) if labels is not None else ()
    common: dict[str, Any] = {"config_hash": config_hash, "code_digest": training_code_digest(),
                              "data_digest": data_digest, "world_size": info.world_size,
                              "findings": list(findings)}  # fmt: skip

    def saver(run: TrainingStage) -> Any:
        def save(pos: Position) -> None:
            states = _gather_rng_states(info)
            if info.is_main:
                writer.save({**common, **run.state_dict(), "rng": states}, pos)
            barrier(info)

        return save

    summary: dict[str, Any] = {"model": config.model, "world_size": info.world_size, "findings": list(findings),
                               "config_hash": config_hash, "data_digest": data_digest, "stages": {}}  # fmt: skip
    timings: dict[str, Any] = {"stages": {}}
    global_step = position.global_step if position else 0
    visual_state: dict[str, Tensor] | None = None
    stem_head: StemHead | None = None  # stage A's, carried into stage B by `contrastive.stem_supervision`
    warmup_on = labels is not None and warmup_enabled(config)
    stage_a: dict[str, Any] = {"enabled": warmup_on}

    # Stage A: supervised warm-up on report labels (skipped when resuming inside stage B).
    if resume and position and position.stage == CONTRASTIVE:
        stage_a = dict(resume.get("stage_a", stage_a))
    elif warmup_on and labels is not None:
        torch.manual_seed(config.seed)
        classifier = HLIPClassifier(
            model_cfg, len(findings), config.warmup.stem_supervision > 0, config.warmup.stem_head
        )
        classifier = classifier.to(info.device)
        if config.init:  # upstream's start: a 2D ImageNet-MAE ViT inflated to 3D
            init_from_2d_vit(classifier.visual, config.init)
        classifier.init_prior_bias(positive_rates(labels))
        run_a = _stage_run(WARMUP, classifier, config, config.warmup, info, labels=labels, manifests=manifests)
        start = Position(WARMUP, 0, 0, global_step)
        if resume and position:
            run_a.load_state_dict(resume)
            _restore_rng(resume, info)
            start = position
        result_a = train_stage(run_a, start, info, save=saver(run_a), logger=logger, progress=progress,
                               checkpoint_every=config.checkpoint_every, log_every=config.log_every)  # fmt: skip
        global_step = result_a.global_step
        visual_state = {k.removeprefix("visual."): v for k, v in classifier.state_dict().items()
                        if k.startswith("visual.")}  # fmt: skip
        if config.contrastive.stem_supervision > 0:  # carried on; the warm-up file is written before it trains
            stem_head = classifier.stem_head
        stage_a.update(_stage_summary(result_a, config.warmup))
        timings["stages"][WARMUP] = _stage_timing(result_a)
        common["stage_a"] = stage_a
        if info.is_main:
            _save_warmup_head(out, classifier, findings)
        del run_a

    # Stage B: contrastive alignment, the vision tower initialised from stage A.
    torch.manual_seed(config.seed + 1)
    model = HLIP(model_cfg).to(info.device)
    if visual_state is not None:
        model.visual.load_state_dict(visual_state)
    elif config.init:
        init_from_2d_vit(model.visual, config.init)
    if config.contrastive.stem_supervision > 0:  # before the optimizer is built: the head trains too
        model.stem_head = _stage_b_stem_head(stem_head, model_cfg, config.contrastive, labels).to(info.device)
    result_b: StageResult | None = None
    if config.contrastive.enabled.lower() != "false" and config.contrastive.epochs > 0:
        tokenizer = create_tokenizer(model_cfg)
        run_b = _stage_run(
            CONTRASTIVE,
            model,
            config,
            config.contrastive,
            info,
            labels=labels,
            manifests=manifests,
            tokenizer=tokenizer,
        )
        start = Position(CONTRASTIVE, 0, 0, global_step)
        if resume and position and position.stage == CONTRASTIVE:
            run_b.load_state_dict(resume)
            _restore_rng(resume, info)
            start = position
        result_b = train_stage(run_b, start, info, save=saver(run_b), logger=logger, evaluator=evaluator,
                               eval_every=config.eval_every, report=report, report_metric=report_metric,
                               checkpoint_every=config.checkpoint_every, log_every=config.log_every,
                               progress=progress)  # fmt: skip
        summary["stages"][CONTRASTIVE] = _stage_summary(result_b, config.contrastive)
        timings["stages"][CONTRASTIVE] = _stage_timing(result_b)
        summary["eval"] = result_b.eval
    summary["stages"][WARMUP] = stage_a
    writer.wait()
    timings["checkpoints"] = writer.times.as_dict()
    if not info.is_main:
        return PretrainResult(out, None, summary, timings)
    model.stem_head = None  # a training device: not part of the exported model
    metadata = {"findings": list(findings), "contract": contract.to_dict(), "stage_a": stage_a,
                "config_hash": config_hash, "pretrain": config.to_dict(), "labeller": _labeller(config)}  # fmt: skip
    model_dir = save_model(model.cpu(), out / "model", metadata=metadata)
    mark_complete(out, config_hash)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return PretrainResult(out, model_dir, summary, timings)


def _setup_determinism(config: PretrainConfig, info: DistInfo) -> None:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        # deterministic mode also fills every new tensor with NaN, in case a kernel reads memory it never wrote:
        # none of ours does (the weights are bit-identical without it), and the fills took 12% of a CPU step
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        torch.backends.cudnn.benchmark = False


def _resume_state(out: Path, config_hash: str, data_digest: str, info: DistInfo) -> dict[str, Any] | None:
    if info.is_main:
        found = resumable(out, config_hash, data_digest)  # removes stale checkpoints
        barrier(info)
        if found is None:
            return None
        path, state = found
    else:
        barrier(info)  # after rank 0 removed stale checkpoints
        latest = latest_checkpoint(out)
        if latest is None:
            return None
        path, state = latest, load_checkpoint(latest, config_hash)
    if state.get("world_size") != info.world_size:
        raise CheckpointMismatchError(
            f"{path} was written by {state.get('world_size')} process(es), this run has {info.world_size}: the "
            "data positions differ; resume with the same number of processes"
        )
    return state


def _gather_rng_states(info: DistInfo) -> list[dict[str, Any]]:
    """RNG states of every rank (rank order), so each rank resumes its own streams."""
    own = rng_state()
    if not info.distributed:
        return [own]
    import torch.distributed as dist

    states: list[Any] = [None] * info.world_size
    dist.all_gather_object(states, own)
    return states


def _restore_rng(state: Mapping[str, Any], info: DistInfo) -> None:
    set_rng_state(state["rng"][info.rank])


def _precision(config: PretrainConfig, info: DistInfo) -> torch.dtype | None:
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if info.device.type == "cuda" else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _log_text_overflow(dataset: StudyDataset, tokenizer: Any) -> None:
    """Say how many training reports the text tower cannot read whole (their tail past the context is cut)."""
    texts = dataset.full_texts()
    context = int(tokenizer.context_length)
    lengths = tokenizer.lengths(texts)
    over = sum(n > context for n in lengths)
    if texts:
        log.info("training texts longer than the text tower's %d-token context: %d of %d (%.0f %%; longest %d "
                 "tokens): their tail is cut (pretrain.data.text.lead_sections chooses which sections come first)",
                 context, over, len(texts), 100.0 * over / len(texts), max(lengths))  # fmt: skip


def _stage_run(
    name: str,
    model: nn.Module,
    config: PretrainConfig,
    stage: StageConfig,
    info: DistInfo,
    *,
    labels: pd.DataFrame | None,
    manifests: Path,
    tokenizer: Any = None,
) -> TrainingStage:
    """Dataset, loader, optimizer, schedule and loss of one stage; `manifests`: the part's, as digested."""
    text_policy = config.data.text if name == CONTRASTIVE else None
    dataset = training_dataset(config, manifests, scans_policy=config.data.scans, text_policy=text_policy,
                               labels=labels, train=True, seed=config.seed, augment=config.data.augment)  # fmt: skip
    if tokenizer is not None and info.is_main:
        _log_text_overflow(dataset, tokenizer)
    autocast = _precision(config, info)
    text_table: TextFeatureTable | None = None
    text_tower = model.get_submodule("text") if tokenizer is not None else None
    if isinstance(text_tower, TextTower) and table_applies(text_tower, dataset):
        text_table = TextFeatureTable.build(text_tower, tokenizer, dataset, config.batch_size, info.device, autocast,
                                            progress=info.is_main)  # fmt: skip
        tokenizer = None  # the loader's workers need not tokenise
    # Workers are spawned, not forked: the trainer runs among other threads (Prefect, MLflow system metrics), and
    # forked workers of a multi-threaded process died at shutdown (exit code 1) inside the Prefect flow.
    loader = make_loader(dataset, batch_size=config.batch_size, workers=config.workers, tokenizer=tokenizer,
                         seed=config.seed, rank=info.rank, world_size=info.world_size,
                         start_method="spawn")  # fmt: skip
    if stage.freeze_stem:  # before the optimizer, which takes only trainable parameters
        _lock_stem(model, stage.freeze_stem)
    if config.grad_checkpointing:
        model.set_grad_checkpointing(True)  # type: ignore[operator]
    train_model: nn.Module = model
    if info.distributed:
        device_ids = [info.local_rank] if info.device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=device_ids)
    text_lr = {"text.transformer.": stage.text_lr} if stage.text_lr is not None else None
    optimizer = create_optimizer(model, stage.lr, stage.weight_decay, prefix_lr=text_lr)
    steps = (len(loader) // config.accum_steps) * stage.epochs
    scheduler = warmup_cosine(optimizer, stage.warmup_steps, steps, stage.lr, stage.min_lr)
    scaler = torch.amp.GradScaler(info.device.type, enabled=autocast is torch.float16)
    if name == WARMUP:
        bce = create_loss("bce")
        stem_weight = stage.stem_supervision

        def compute_loss(m: nn.Module, batch: dict[str, Any]) -> Tensor:
            out = m(batch["image"], batch["scan_mask"])
            loss: Tensor = _label_bce(bce, out["logits"], batch["labels"])
            if stem_weight > 0:  # deep supervision of the stem (`StageConfig.stem_supervision`)
                loss = loss + stem_weight * _stem_bce(bce, out["stem_logits"], batch["labels"])
            return loss

        loss_scale = 1.0
    else:
        extra = {"label_targets": stage.label_targets} if stage.label_targets > 0 else {}
        contrastive = create_loss(stage.loss, rank=info.rank, world_size=info.world_size, **extra)
        plain_clip = isinstance(contrastive, ClipLoss) and not contrastive.gather_with_grad
        loss_scale = float(info.world_size) if plain_clip and not contrastive.local_loss else 1.0
        bce, stem_weight = create_loss("bce"), stage.stem_supervision

        def compute_loss(m: nn.Module, batch: dict[str, Any]) -> Tensor:
            text = (
                {"text": batch["text"]}
                if text_table is None
                else {"text_pooled": text_table.lookup(batch["study_key"])}
            )
            out = m(image=batch["image"], scan_mask=batch["scan_mask"], **text)
            stem_logits = out.pop("stem_logits", None)  # the model's stem head: `contrastive.stem_supervision`
            loss: Tensor = contrastive(**out, labels=batch["labels"])
            if stem_logits is not None:  # a per-rank mean like any BCE: kept out of the CLIP loss's rank scaling
                loss = loss + stem_weight / loss_scale * _stem_bce(bce, stem_logits, batch["labels"])
            return loss

    return TrainingStage(name, model, train_model, compute_loss, loader, optimizer, scheduler, scaler, stage.epochs,
                    accum_steps=config.accum_steps, grad_clip=config.grad_clip, loss_scale=loss_scale,
                    autocast_dtype=autocast)  # fmt: skip


def _label_bce(bce: nn.Module, logits: Tensor, labels: Tensor) -> Tensor:
    """The report-label BCE of `logits`; unknown or uncertain labels (NaN) are masked (-1)."""
    loss: Tensor = bce(logits, torch.nan_to_num(labels, nan=-1.0))
    return loss


def _stem_bce(bce: nn.Module, logits: Tensor, labels: Tensor) -> Tensor:
    """The stem head's report-label BCE: with several heads side by side (`linear_and_scan_mlp`: the logits are whole
    sets of the findings), the mean of each head's BCE against the same labels."""
    heads, rest = divmod(logits.shape[1], labels.shape[1])
    if rest or not heads:
        raise ValueError(f"stem logits {tuple(logits.shape)} are not whole sets of the {labels.shape[1]} findings")
    return _label_bce(bce, logits, labels.repeat(1, heads) if heads > 1 else labels)


def _lock_stem(model: nn.Module, convolutions: int) -> None:
    """Freeze the first layers of the vision tower's stem (`StageConfig.freeze_stem`)."""
    patch_embed = model.get_submodule("visual.patch_embed")
    if not isinstance(patch_embed, PatchEmbed3D):
        raise TypeError(f"visual.patch_embed is a {type(patch_embed).__name__}, not a PatchEmbed3D")
    patch_embed.lock_stem(convolutions)


def _stage_b_stem_head(
    stage_a: StemHead | None, model_cfg: ModelConfig, stage: StageConfig, labels: pd.DataFrame | None
) -> StemHead:
    """Stage B's stem head: stage A's as it ended, or (no stage A in this process: none configured, or a resume
    inside stage B, whose checkpoint then overwrites it) a new one of `stage.stem_head`'s form at the label prior."""
    if stage_a is not None:
        return stage_a
    if labels is None:  # `labels_used` reads the table whenever `contrastive.stem_supervision` > 0
        raise RuntimeError("contrastive.stem_supervision needs the label table")
    head = StemHead(model_cfg.vision.width, labels.shape[1], stage.stem_head)
    init_prior_bias(head.prior_layers(), positive_rates(labels))
    return head


def _stage_summary(result: StageResult, stage: StageConfig) -> dict[str, Any]:
    """What a stage produced (no wall-clock time: this goes into checkpoints, the model and `summary.json`)."""
    return {
        "epochs": stage.epochs,
        "steps": result.steps,
        "epoch_losses": result.epoch_losses,
        "final_loss": result.epoch_losses[-1] if result.epoch_losses else None,
        "lr": stage.lr,
    }


def _stage_timing(result: StageResult) -> dict[str, Any]:
    """How fast a stage ran here (for MLflow and the run record)."""
    return {"studies_per_s": result.studies_per_s, "seconds_per_epoch": result.seconds_per_epoch,
            "data_wait_per_epoch": result.data_wait_per_epoch,
            "save_seconds_per_epoch": result.save_seconds_per_epoch}  # fmt: skip


def _save_warmup_head(out: Path, classifier: HLIPClassifier, findings: tuple[str, ...]) -> None:
    """The stage-A model (vision tower + finding head) as safetensors, with its finding order."""
    from hlip.models.weights import save_safetensors

    folder = out / "warmup"
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(classifier, folder / "classifier.safetensors", metadata={"format": "hlip-warmup"})
    (folder / "findings.json").write_text(json.dumps(list(findings)) + "\n")


def study_contract(
    config: PretrainConfig, preprocess: Mapping[str, Any] | None, manifests: Path | None = None
) -> StudyContract:
    """The study contract of the trained model: the preprocessing its training part was ingested with and the
    training scan policy.

    The part's `summary.json` records what ingest did; `preprocess` (`params.yaml:ingest.preprocess`) is used only
    when the part records nothing (a hand-made part), and must agree with the record when both exist. `manifests`:
    the folder holding the part's manifests and summary (default: `manifest_dir(config)`).

    Raises:
        ContractError: The parameters and the ingested part disagree (both values named).
    """
    recorded = None
    folder = manifests or manifest_dir(config)
    summary_file = folder / "summary.json"
    if summary_file.is_file():
        recorded = json.loads(summary_file.read_text()).get("preprocess")
    where = f"{folder} (ingest summary)"
    if recorded is not None:
        contract = StudyContract(from_dict(PreprocessConfig, recorded, where=where), config.data.scans)
        if preprocess:
            contract.require_preprocess(preprocess, "params.yaml:ingest.preprocess")
        return contract
    first = pd.read_parquet(folder / "scans.parquet", columns=["shape"]).head(1)
    size = tuple(int(v) for v in first["shape"].iloc[0]) if len(first) else None
    if preprocess:
        given = from_dict(PreprocessConfig, preprocess, where="ingest.preprocess")
        if size is not None and tuple(given.size) != size:
            raise ContractError(
                f"params.yaml:ingest.preprocess.size {list(given.size)} differs from the scans of "
                f"{folder} {list(size)} (and the part records no preprocessing of its own)"
            )
        return StudyContract(given, config.data.scans)
    shape = size or PreprocessConfig().size
    return StudyContract(dataclasses.replace(PreprocessConfig(), size=shape), config.data.scans)  # type: ignore[arg-type]


def _labeller(config: PretrainConfig) -> str:
    """How the warm-up labels were made, for the model card: backend(s) and finding list with its version."""
    if not config.data.labels_file.is_file():
        return "none (no report labels: contrastive training only)"
    table = pd.read_parquet(config.data.labels_file)
    backends = sorted(table["backend"].unique()) if "backend" in table else ["unrecorded backend"]
    described = f"{' + '.join(map(str, backends))} labels"
    if config.data.findings:
        from hlip.labels.finding_list import load_findings

        found = load_findings(config.data.findings)
        described += f" for finding list {found.name} {found.version}"
    return described
