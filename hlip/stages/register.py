"""Stage `register`: log the served pyfunc model, register it as a new version, run the champion/challenger gate.

Reads the `register:` block (`hlip.tracking.registry.RegisterConfig`) and the `ingest:` block (serving ingests a
DICOM study with training's series rules and de-identification; its preprocessing must equal the model's study
contract, else `ContractError` names both). Writes `<out>/decision.json` and `<out>/model_card.md` (both depend on
the registry's earlier versions, so they are logged to MLflow and are no DVC outputs), `<out>/request.json` (what was
asked of the registry, from the inputs alone: the stage's DVC output) and `outputs/metrics/register.json` (the gated
metric only; the version number and run id go to MLflow and the run record).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlip.config import to_dict
from hlip.data.config import IngestConfig, split_ingest_block
from hlip.stages.base import TaskRunner, direct, read_block, write_metrics, write_run_record
from hlip.tracking.promotion import PromotionDecision, promote, write_decision
from hlip.tracking.registry import (
    RegisterConfig,
    read_benchmark_fingerprint,
    read_metrics,
    read_run_ids,
    register_study_model,
)
from hlip.tracking.runs import lineage_tags, stage_run

if TYPE_CHECKING:
    from hlip.tracking.pyfunc import ServingSpec

STAGE = "register"
REQUEST = "request.json"  # the stage's DVC output (see `write_request`)


@dataclass(frozen=True)
class RegisterParams:
    """The `register:` block and the ingest settings serving uses."""

    config: RegisterConfig
    ingest: IngestConfig

    @classmethod
    def load(cls, path: str | Path | None = None) -> RegisterParams:
        """The blocks of the parameters file."""
        _, _, ingest = split_ingest_block(read_block("ingest", path))
        return cls(RegisterConfig.from_dict(read_block(STAGE, path)), ingest)


@contextmanager
def _in_run(run_id: str) -> Iterator[None]:
    """Log into run `run_id`: the active run, or that run resumed (a task on another thread)."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id):
        yield


def log_model(spec: ServingSpec, run_id: str) -> str:
    """Log the pyfunc model in the stage run; returns its model URI."""
    from hlip.tracking.pyfunc import log_study_model

    with _in_run(run_id):
        return str(log_study_model(spec).model_uri)


def register(
    model_uri: str,
    spec: ServingSpec,
    name: str,
    metrics: dict[str, float],
    run_ids: dict[str, str],
    benchmark: str | None,
) -> tuple[str, str]:
    """Register a new version with tags and model card; returns (version, card)."""
    version, card = register_study_model(model_uri, spec, name, metrics, lineage_tags(), run_ids, benchmark)
    return str(version.version), card


def gate(config: RegisterConfig, version: str) -> PromotionDecision:
    """Champion/challenger promotion gate."""
    return promote(config.name, version, config.metric, config.margin, config.greater_is_better)


def write_request(config: RegisterConfig, path: Path) -> Path:
    """Write `request.json`, what the stage asked the registry for, from its inputs alone: the registered name, the
    model's and the benchmark's fingerprints and the gated metric.

    It is the stage's DVC output (`dvc.yaml`), so that a fresh clone, whose DVC cache is empty, runs the stage: with
    the gated metric its only output, and that metric file in git, `dvc repro` in a fresh clone found register
    unchanged once the model reproduced bit for bit, skipped it, and left no registered model. The registry's
    answer (version, champion) depends on its history and stays in `decision.json` and MLflow.
    """
    evaluated = json.loads(Path(config.metrics).read_text())
    request = {
        "name": config.name,
        "model_fingerprint": evaluated.get("model_fingerprint"),
        "benchmark_fingerprint": evaluated.get("benchmark_fingerprint"),
        "metric": config.metric,
        "value": evaluated.get(config.metric),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
    return path


@dataclass(frozen=True)
class RegisterOutcome:
    """The version registered, its promotion decision, the model card and the MLflow run."""

    version: str
    decision: PromotionDecision
    card: str
    run_id: str


def run(params: RegisterParams, runner: TaskRunner = direct) -> RegisterOutcome:
    """Register the evaluated model and decide on its promotion (registry I/O units: `log-model`, `register`,
    `gate`, which a flow retries)."""
    from hlip.tracking.pyfunc import ServingSpec

    config = params.config
    metrics = read_metrics(config.metrics)
    if config.metric not in metrics:
        raise ValueError(f"{config.metrics} has no metric {config.metric!r} (params.yaml:register.metric)")
    spec = ServingSpec.resolve(config.model_dir, config.prompts, params.ingest)
    out = Path(config.out)
    with stage_run(STAGE, {STAGE: to_dict(config)}) as mlrun:
        import mlflow

        run_id = mlrun.info.run_id
        mlflow.log_metrics(metrics)
        model_uri = runner(log_model, spec, run_id, name="log-model")
        run_ids = {**read_run_ids(config.run_ids), STAGE: run_id}
        benchmark = read_benchmark_fingerprint(config.metrics)
        version, card = runner(register, model_uri, spec, config.name, metrics, run_ids, benchmark, name="register")
        decision = runner(gate, config, version, name="gate")
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_card.md").write_text(card)
        mlflow.log_artifact(str(out / "model_card.md"))
        mlflow.log_artifact(str(write_decision(decision, out / "decision.json")))
        # the decision depends on the registry's history (a fresh store promotes v1): it stays in decision.json and
        # MLflow, and the metrics file (in dvc.lock) holds only what the inputs fix
        result: dict[str, Any] = {config.metric: decision.challenger_value}
        write_metrics(STAGE, result)
        write_request(config, out / REQUEST)
        write_run_record(STAGE, run_id, {"version": version})
        return RegisterOutcome(version, decision, card, run_id)
