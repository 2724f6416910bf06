"""The parent `pipeline` flow end to end on a small demo corpus: every stage as a subflow of one flow run, from
raw DICOM to a registered champion that loads through the MLflow registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough benchmark studies (2 per class) for a validation split and per-class AUCs."""
    from demo_corpus import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("pipeline_corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=5, n_train_studies=10, n_benchmark_studies=10), workers=1)
    return out


@pytest.fixture
def pipeline_dir(pipeline_corpus: Path, project_workdir: Callable[..., Path]) -> Path:
    """The project's params.yaml pointed at the corpus, with a tiny model and one epoch per training stage."""

    def tiny(params: dict[str, Any]) -> None:
        params["ingest"]["preprocess"]["size"] = [16, 32, 32]  # hlip-tiny's scan size
        params["label"]["reference"]["path"] = str(pipeline_corpus / "ground_truth/train_labels.csv")
        params["pretrain"].update(model="hlip-tiny", batch_size=4)
        params["pretrain"]["warmup"]["epochs"] = 1
        params["pretrain"]["contrastive"]["epochs"] = 1
        labels_csv = str(pipeline_corpus / "ground_truth/benchmark_labels.csv")
        params["evaluate"]["benchmark_args"]["labels_csv"] = labels_csv
        params["evaluate"].update(n_boot=20, linear_probe=False, val_fraction=0.5)

    return project_workdir(pipeline_corpus, tiny)


def test_pipeline_flow_runs_every_stage_as_a_subflow_and_registers_a_champion(pipeline_dir: Path) -> None:
    import anyio
    import mlflow
    from prefect.client.orchestration import get_client

    from flows.pipeline import pipeline_flow

    result = pipeline_flow()
    assert result["validate"]["passed"]
    assert set(result["ingest"]) == {"train", "benchmark"}

    labels = pd.read_parquet(pipeline_dir / "outputs/labels/train/labels.parquet")
    assert set(labels["value"].unique()) <= {-1, 0, 1}
    assert (pipeline_dir / "outputs/pretrain/model/model.safetensors").is_file()
    metrics = json.loads((pipeline_dir / "outputs/metrics/evaluate.json").read_text())
    assert 0.0 <= metrics["zero_shot.macro_auc"] <= 1.0
    assert metrics["protocol"] == "validation"
    sweep = yaml.safe_load((pipeline_dir / "outputs/sweep/best_params.yaml").read_text())
    assert sweep["status"] == "skipped"  # sweep.enabled is false by default

    decision = json.loads((pipeline_dir / "outputs/register/decision.json").read_text())
    assert decision["promoted"] is True  # the first version of a name becomes champion
    mlflow.set_tracking_uri(f"sqlite:///{(pipeline_dir / 'outputs/mlflow/mlflow.db').resolve()}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(decision["name"], "champion")
    assert str(champion.version) == str(decision["version"])
    pretrain_run = json.loads((pipeline_dir / "outputs/runs/pretrain.json").read_text())["mlflow_run_id"]
    assert champion.tags["run.pretrain"] == pretrain_run  # the version points back at its training run

    async def flow_runs() -> list[tuple[str, str | None]]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            flows = {f.id: f.name for f in await client.read_flows()}
            by_id = {r.id: r for r in runs}
            parents = {}
            for r in runs:
                if r.parent_task_run_id:
                    task_run = await client.read_task_run(r.parent_task_run_id)
                    parents[r.id] = flows[by_id[task_run.flow_run_id].flow_id]
            return [(flows[r.flow_id], parents.get(r.id)) for r in runs]

    pairs = anyio.run(flow_runs)
    for stage in ("ingest", "validate", "label", "sweep", "pretrain", "evaluate", "register"):
        assert (stage, "pipeline") in pairs, stage
