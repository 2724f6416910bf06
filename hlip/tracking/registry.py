"""Registration of the served model: a new version of a configured name, with lineage, metrics and a model card.

```python
with stage_run("register", ...) as run:
    spec = ServingSpec.resolve(cfg.model_dir, cfg.prompts, ingest_config)       # hlip.tracking.pyfunc
    info = log_study_model(spec)
    mv, card = register_study_model(info.model_uri, spec, cfg.name, read_metrics(cfg.metrics), lineage_tags(),
                                    {**read_run_ids(cfg.run_ids), "register": run.info.run_id})
    decision = promote(cfg.name, mv.version, cfg.metric, cfg.margin)            # hlip.tracking.promotion
```

Version tags: the lineage tags of `hlip.tracking.runs.lineage_tags` (`git.commit`, `git.dirty`, `data.dvc_md5`,
`params.sha256`), one `metric.<key>` per benchmark metric, and `run.<stage>` with the MLflow run id of each earlier
stage found (the `mlflow_run_id` key of `outputs/metrics/<stage>.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlip.config import from_dict
from hlip.tracking.model_card import (
    CardFacts,
    evaluation_summary,
    render_model_card,
    training_composition,
    training_part,
)
from hlip.tracking.promotion import BENCHMARK_TAG, METRIC_TAG

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from hlip.tracking.pyfunc import ServingSpec

RUN_TAG = "run."
RUN_ID_KEY = "mlflow_run_id"


@dataclass(frozen=True)
class RegisterConfig:
    """The `register:` block of params.yaml.

    Attributes:
        model_dir: Exported model folder of the pretrain stage.
        metrics: Flat metrics JSON of the evaluate stage.
        name: Registered model name.
        metric: Metric of the promotion gate (a key of `metrics`).
        margin: The challenger must beat the champion by more than this.
        greater_is_better: Direction of `metric`.
        prompts: Prompt set (YAML) of the served zero-shot findings.
        run_ids: Stage run records (`outputs/runs/<stage>.json`) whose `mlflow_run_id` is recorded as a
            `run.<file stem>` tag.
        out: Output folder (`decision.json`, `model_card.md`).
    """

    model_dir: str = "outputs/pretrain/model"
    metrics: str = "outputs/evaluate/metrics.json"
    name: str = "hlip-demo"
    metric: str = "zero_shot.macro_auc"
    margin: float = 0.0
    greater_is_better: bool = True
    prompts: str = "brain_mri_demo"
    run_ids: tuple[str, ...] = ("outputs/runs/pretrain.json", "outputs/runs/evaluate.json")
    out: str = "outputs/register"

    def __post_init__(self) -> None:
        if self.margin < 0 or not math.isfinite(self.margin):
            raise ValueError(f"register.margin must be a finite number >= 0, got {self.margin}")
        if not self.name.strip() or not self.metric.strip():
            raise ValueError("register.name and register.metric must not be empty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RegisterConfig:
        """Build from the `register:` block, rejecting unknown keys."""
        return from_dict(cls, data, where="params.yaml:register")


def read_metrics(path: str | Path) -> dict[str, float]:
    """The numeric metrics of a JSON file, nested keys joined with dots (non-numeric values are skipped).

    Raises:
        FileNotFoundError: No such file (run the evaluate stage first).
        ValueError: Not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path} (run the evaluate stage first)")
    data = json.loads(path.read_text())
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: metrics must be a JSON object of name -> number")
    return _numbers(data)


def _numbers(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def read_run_ids(files: Iterable[str | Path]) -> dict[str, str]:
    """`{stage: run id}` from the `mlflow_run_id` key of each existing stage metrics file (stage = file stem)."""
    found = {}
    for file in map(Path, files):
        if not file.is_file():
            continue
        try:
            run_id = json.loads(file.read_text()).get(RUN_ID_KEY)
        except (ValueError, AttributeError):
            continue
        if isinstance(run_id, str) and run_id:
            found[file.stem] = run_id
    return found


def read_benchmark_fingerprint(path: str | Path) -> str | None:
    """The `benchmark_fingerprint` an evaluation's metrics file records (None when it has none)."""
    value = json.loads(Path(path).read_text()).get("benchmark_fingerprint")
    return value if isinstance(value, str) and value else None


def version_tags(
    metrics: Mapping[str, float],
    lineage: Mapping[str, str],
    run_ids: Mapping[str, str],
    benchmark: str | None = None,
) -> dict[str, str]:
    """The tags of a new version: lineage, `metric.<key>`, `run.<stage>` and the benchmark's fingerprint."""
    tags = dict(lineage)
    if benchmark:
        tags[BENCHMARK_TAG] = benchmark
    tags.update({f"{METRIC_TAG}{k}": repr(float(v)) for k, v in metrics.items()})
    tags.update({f"{RUN_TAG}{stage}": run_id for stage, run_id in run_ids.items()})
    return tags


def register_version(model_uri: str, name: str, tags: Mapping[str, str]) -> ModelVersion:
    """Register `model_uri` as a new version of `name` (created when missing) with `tags`."""
    import mlflow

    return mlflow.register_model(model_uri, name, tags=dict(tags))


def set_model_card(name: str, version: str | int, card: str) -> None:
    """Make the Markdown `card` the description of the version."""
    from mlflow import MlflowClient

    MlflowClient().update_model_version(name, str(version), description=card)


def register_study_model(
    model_uri: str,
    spec: ServingSpec,
    name: str,
    metrics: Mapping[str, float],
    lineage: Mapping[str, str],
    run_ids: Mapping[str, str],
    benchmark: str | None = None,
) -> tuple[ModelVersion, str]:
    """Register a logged study model with its tags (`benchmark`: the evaluated benchmark's fingerprint), then set
    its model card; returns the version and the card."""
    version = register_version(model_uri, name, version_tags(metrics, lineage, run_ids, benchmark))
    card = render_model_card(card_facts(spec, name, str(version.version), metrics, lineage, run_ids, benchmark))
    set_model_card(name, version.version, card)
    return version, card


def card_facts(
    spec: ServingSpec,
    name: str,
    version: str,
    metrics: Mapping[str, float],
    lineage: Mapping[str, str],
    run_ids: Mapping[str, str],
    benchmark: str | None = None,
) -> CardFacts:
    """The card's facts: the spec, the labeller and scalar notes of the export metadata, what the training
    manifests hold (when they are here) and the evaluation the metrics describe."""
    meta = spec.metadata
    labeller = meta.get("labeller", "unknown")
    labeller = json.dumps(labeller, sort_keys=True) if isinstance(labeller, Mapping) else str(labeller)
    notes = {k: v for k, v in sorted(meta.items()) if k != "labeller" and isinstance(v, str | int | float)}
    part = training_part(meta)
    trained_on = training_composition(part) if part is not None else {}
    return CardFacts(name, version, spec.model, list(spec.findings), spec.ingest, spec.contract.scans, dict(metrics),
                     dict(lineage), dict(run_ids), labeller, notes, trained_on,
                     evaluation_summary(metrics, benchmark))  # fmt: skip
