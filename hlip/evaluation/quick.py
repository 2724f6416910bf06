"""A quick zero-shot score during training: the training loop's `evaluator` hook (and the sweep's objective).

It scores the model on the *validation* split of a benchmark (the same seeded split `run_evaluation` uses for
thresholds), never on its test rows, so tuning on it leaves the reported test numbers honest. The volumes of the
split are loaded once and kept in memory; each call embeds them with the current weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hlip.data.contract import StudyContract
from hlip.evaluation.benchmarks.base import Benchmark
from hlip.evaluation.embeddings import embed_texts, embed_volume_batches
from hlip.evaluation.metrics import auc_per_label, macro, multiclass_metrics
from hlip.evaluation.prompts import PromptSet, load_prompt_set
from hlip.evaluation.thresholds import validation_split
from hlip.evaluation.zero_shot import zero_shot_scores

if TYPE_CHECKING:
    from torch import nn


class QuickZeroShot:
    """`evaluator(model, step) -> {"zero_shot.macro_auc": ..., ["zero_shot.balanced_accuracy": ...]}`.

    Args:
        benchmark: The benchmark whose validation split is scored.
        prompts: Prompt set name or path; None uses the benchmark's own.
        val_fraction: Validation share of the benchmark (as `evaluate.val_fraction`).
        seed: Seed of the split (as `evaluate.seed`).
        batch_size: Studies per forward pass.
    """

    def __init__(
        self,
        benchmark: Benchmark,
        prompts: str | None = None,
        val_fraction: float = 0.3,
        seed: int = 0,
        batch_size: int = 8,
    ) -> None:
        labels = benchmark.labels()
        ids = [i for i in benchmark.study_ids() if i in labels.index]
        y = labels.loc[ids, list(benchmark.classes)].to_numpy()
        val, _ = validation_split(y, val_fraction, seed)
        self.benchmark = benchmark
        self.prompt_set: PromptSet = load_prompt_set(prompts or benchmark.prompts)
        self.y = y[val]
        self.volumes = [benchmark.load(ids[i]) for i in val]
        self.batch_size = batch_size

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        from hlip.models.factory import create_tokenizer

        device = next(model.parameters()).device
        tokenizer = create_tokenizer(model.cfg)  # type: ignore[arg-type]
        batches = (self.volumes[i : i + self.batch_size] for i in range(0, len(self.volumes), self.batch_size))
        image_embeddings = embed_volume_batches(model, device, batches)  # type: ignore[arg-type]

        def encode(texts: Sequence[str]) -> np.ndarray:
            return embed_texts(model, tokenizer, device, texts)  # type: ignore[arg-type]

        scale = float(model.logit_scale.detach().exp().clamp(max=100.0))  # type: ignore[operator]
        scores = zero_shot_scores(
            image_embeddings, self.prompt_set, self.benchmark.classes, self.benchmark.task, encode, scale
        ).scores
        out = {"zero_shot.macro_auc": macro(auc_per_label(self.y, scores))}
        if self.benchmark.task == "multiclass":
            out["zero_shot.balanced_accuracy"] = multiclass_metrics(self.y, scores)["balanced_accuracy"]
        return out


def make_quick_evaluator(
    params: Mapping[str, Any], contract: StudyContract, metric: str = "zero_shot.macro_auc"
) -> QuickZeroShot:
    """The quick evaluator of a whole `params.yaml` (its `evaluate` block names the benchmark and the split) for a
    model in training under `contract` (its study contract: the benchmark's scans are chosen by it)."""
    from hlip.evaluation.benchmarks import get_benchmark

    block = dict(params.get("evaluate") or {})
    args = dict(block.get("benchmark_args") or {})
    if block.get("data_root") is not None:
        args["data_root"] = block["data_root"]
    evaluator = QuickZeroShot(
        get_benchmark(str(block.get("benchmark", "demo")), contract=contract, **args),
        prompts=block.get("prompts"),
        val_fraction=float(block.get("val_fraction", 0.3)),
        seed=int(block.get("seed", 0)),
    )
    if metric not in ("zero_shot.macro_auc", "zero_shot.balanced_accuracy"):
        raise ValueError(f"the quick evaluator reports zero_shot.macro_auc / zero_shot.balanced_accuracy, not {metric}")
    return evaluator
