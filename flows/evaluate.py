"""Flow `evaluate`: the `hlip.stages.evaluate` stage as a Prefect flow (the evaluation is one task).

Run it as `python -m flows.evaluate` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `evaluate:`
block of `params.yaml`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import prefect_runner, publish_summary
from hlip.stages import evaluate as stage


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params: str | None = None) -> dict[str, Any]:
    """Evaluate `evaluate.model_dir` on `evaluate.benchmark`; returns the flat metrics and the run's facts."""
    params_ = stage.EvaluateParams.load(params)
    outcome = stage.run(params_, prefect_runner())
    result = outcome.result
    rows = {
        "model": result.facts["model_id"],
        "benchmark": params_.benchmark,
        "protocol": params_.config.protocol,
        "prompts": result.facts["prompts"],
        **{k: f"{result.metrics[k]:.3f}" for k in stage.HEADLINE if k in result.metrics},
        "embeddings": "cached" if result.embeddings_cached else "computed",
        "summary": str(result.files["summary_html"]),
    }
    publish_summary("evaluate", "Evaluation", rows, outcome.run_id)
    print((params_.out / "summary.md").read_text())
    return {"metrics": result.metrics, "facts": result.facts}


if __name__ == "__main__":
    evaluate_flow()
