"""Stage `evaluate`: an exported model on a benchmark -> zero-shot, linear-probe and retrieval metrics.

Reads the `evaluate:` block: `model_dir`, `benchmark` and its `benchmark_args` (`data_root` too), `out`,
`cache_dir`, and the evaluation settings (`hlip.evaluation.config.EvaluateConfig`). The benchmark's scans are chosen
and preprocessed by the model's own study contract (`hlip.evaluation.benchmarks.open_benchmark`). Study embeddings
are cached per (model, benchmark) under `cache_dir`, so a prompt or protocol change re-evaluates in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, from_dict, to_dict
from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.runner import EvaluationResult, run_evaluation
from hlip.stages.base import TaskRunner, direct, read_block, write_metrics, write_run_record
from hlip.tracking.runs import stage_run

STAGE = "evaluate"
HEADLINE = (
    "zero_shot.macro_auc",
    "zero_shot.balanced_accuracy",
    "linear_probe.macro_auc",
    "retrieval.report_to_study.recall_at_5",
    "retrieval.study_to_study.ctclip_map_at_5",
)


@dataclass(frozen=True)
class EvaluateParams:
    """The `evaluate:` block.

    Attributes:
        model_dir: The exported model (carries its study contract).
        benchmark: A registered benchmark name (`hlip evaluate --help` lists them).
        benchmark_args: Adapter arguments (`data_root`, `labels_csv`, ...).
        out: Output folder (metrics, tables, plots, summary).
        cache_dir: Embedding cache folder (None: no cache).
        config: The evaluation settings.
    """

    model_dir: Path
    benchmark: str
    out: Path
    benchmark_args: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    config: EvaluateConfig = field(default_factory=EvaluateConfig)

    @classmethod
    def from_block(cls, block: Mapping[str, Any], where: str = "params.yaml:evaluate") -> EvaluateParams:
        """Build from the block; `model_dir`, `benchmark` and `out` are required."""
        rest = dict(block)
        missing = [k for k in ("model_dir", "benchmark", "out") if not rest.get(k)]
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {missing}")
        args = dict(rest.pop("benchmark_args", None) or {})
        data_root = rest.pop("data_root", None)
        if data_root is not None:
            args["data_root"] = data_root
        cache = rest.pop("cache_dir", None)
        return cls(Path(rest.pop("model_dir")), str(rest.pop("benchmark")), Path(rest.pop("out")), args,
                   Path(cache) if cache else None, from_dict(EvaluateConfig, rest, where=where))  # fmt: skip

    @classmethod
    def load(cls, path: str | Path | None = None) -> EvaluateParams:
        """The block of the parameters file."""
        return cls.from_block(read_block(STAGE, path))


def evaluate_benchmark(params: EvaluateParams) -> EvaluationResult:
    """Open the benchmark for the model (its study contract) and evaluate the model on it."""
    from hlip.evaluation.benchmarks import open_benchmark

    bench = open_benchmark(params.benchmark, params.model_dir, **params.benchmark_args)
    return run_evaluation(params.model_dir, bench, params.config, params.out, params.cache_dir)


@dataclass(frozen=True)
class EvaluateOutcome:
    """The evaluation result, the metrics written and the MLflow run."""

    result: EvaluationResult
    metrics: dict[str, Any]
    run_id: str


def run(params: EvaluateParams, runner: TaskRunner = direct) -> EvaluateOutcome:
    """Evaluate (one unit of `runner`, named ``evaluate-<benchmark>``), record to MLflow, write the metrics."""
    logged = {"model_dir": str(params.model_dir), "benchmark": params.benchmark,
              "benchmark_args": params.benchmark_args, **to_dict(params.config)}  # fmt: skip
    with stage_run(STAGE, {STAGE: logged}) as mlrun:
        import mlflow

        result = runner(evaluate_benchmark, params, name=f"evaluate-{params.benchmark}")
        mlflow.set_tags({f"evaluate.{k}": v[:5000] for k, v in result.facts.items()})
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if math.isfinite(v)})
        mlflow.log_artifacts(str(params.out), artifact_path="evaluate")
        metrics = {"benchmark": params.benchmark, "protocol": params.config.protocol,
                   **{k: v for k, v in result.metrics.items() if math.isfinite(v)}}  # fmt: skip
        write_metrics(STAGE, metrics)
        write_run_record(STAGE, mlrun.info.run_id, {"seconds": result.seconds})
        return EvaluateOutcome(result, metrics, mlrun.info.run_id)
