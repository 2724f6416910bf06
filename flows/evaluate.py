"""Flow `evaluate`: a trained model on a benchmark -> zero-shot, linear-probe and retrieval metrics.

Run it as `python -m flows.evaluate` (the `dvc.yaml` stage) or as a Prefect deployment; both read the
`evaluate:` block of `params.yaml`. Study embeddings are cached per (model, benchmark) under `cache_dir`, so a
change of prompts, protocol or bootstrap settings re-evaluates in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import params_path, publish_summary, stage_params, write_stage_metrics
from hlip.config import from_dict, to_dict
from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.runner import EvaluationResult, run_evaluation
from hlip.tracking.runs import stage_run

HEADLINE = (
    "zero_shot.macro_auc",
    "zero_shot.balanced_accuracy",
    "linear_probe.macro_auc",
    "retrieval.report_to_study.recall_at_5",
    "retrieval.study_to_study.ctclip_map_at_5",
)


@task(task_run_name="evaluate-{benchmark}")
def evaluate_benchmark(
    model_dir: Path,
    benchmark: str,
    benchmark_args: dict[str, Any],
    config: EvaluateConfig,
    out: Path,
    cache_dir: Path | None,
) -> EvaluationResult:
    """Build the benchmark adapter and evaluate the model on it."""
    from hlip.evaluation.benchmarks import get_benchmark

    return run_evaluation(model_dir, get_benchmark(benchmark, **benchmark_args), config, out, cache_dir)


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params: str | None = None) -> dict[str, Any]:
    """Evaluate `evaluate.model_dir` on `evaluate.benchmark`; returns the flat metrics and the run's facts."""
    block = stage_params("evaluate", Path(params) if params else None)
    model_dir = Path(block.pop("model_dir", "outputs/pretrain/model"))
    benchmark = str(block.pop("benchmark", "demo"))
    benchmark_args = dict(block.pop("benchmark_args", None) or {})
    if block.get("data_root") is not None:
        benchmark_args["data_root"] = block.pop("data_root")
    block.pop("data_root", None)
    out = Path(block.pop("out", "outputs/evaluate"))
    cache = block.pop("cache_dir", "outputs/cache/embeddings")
    config = from_dict(EvaluateConfig, block, where="params.yaml:evaluate")
    logged = {"model_dir": str(model_dir), "benchmark": benchmark, "benchmark_args": benchmark_args, **to_dict(config)}
    with stage_run("evaluate", {"evaluate": logged}) as run:
        import mlflow

        result = evaluate_benchmark(model_dir, benchmark, benchmark_args, config, out, Path(cache) if cache else None)
        mlflow.set_tags({f"evaluate.{k}": v[:5000] for k, v in result.facts.items()})
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if math.isfinite(v)})
        mlflow.log_artifacts(str(out), artifact_path="evaluate")
        write_stage_metrics(
            "evaluate",
            {
                "benchmark": benchmark,
                "protocol": config.protocol,
                "mlflow_run_id": run.info.run_id,
                **{k: v for k, v in result.metrics.items() if math.isfinite(v)},
            },
        )
        rows = {
            "params": str(params or params_path()),
            "model": result.facts["model_id"],
            "benchmark": benchmark,
            "protocol": config.protocol,
            "prompts": result.facts["prompts"],
            **{k: f"{result.metrics[k]:.3f}" for k in HEADLINE if k in result.metrics},
            "embeddings": "cached" if result.embeddings_cached else "computed",
            "summary": str(result.files["summary_html"]),
        }
        publish_summary("evaluate", "Evaluation", rows, run.info.run_id)
        print((out / "summary.md").read_text())
    return {"metrics": result.metrics, "facts": result.facts}


if __name__ == "__main__":
    evaluate_flow()
