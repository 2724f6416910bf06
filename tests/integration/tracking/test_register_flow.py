"""The `register` flow under a real (temporary) Prefect server: params block in, decision and metrics out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def test_register_flow_registers_gates_and_writes_outputs(
    prefect_server: None,
    store: Path,
    exported_model: Path,
    prompts: dict[str, Any],
    write_metrics: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    from flows.register import register_flow

    (tmp_path / "prompts.yaml").write_text(yaml.safe_dump(prompts))
    Path("outputs/runs").mkdir(parents=True)
    Path("outputs/runs/pretrain.json").write_text(json.dumps({"mlflow_run_id": "b" * 32}))

    def run(auc: float) -> dict[str, Any]:
        params = {
            "ingest": {"workers": 1, "preprocess": {"size": [16, 32, 32], "spacing": [8.0, 7.0, 7.0]}},
            "register": {
                "model_dir": str(exported_model),
                "metrics": str(write_metrics(auc, f"m{auc}.json")),
                "prompts": str(tmp_path / "prompts.yaml"),
                "margin": 0.01,
            },
        }
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        return register_flow(str(tmp_path / "params.yaml"))

    first = run(0.70)
    second = run(0.705)  # +0.005 is within the margin: stays challenger
    assert first["promoted"]
    assert not second["promoted"]
    assert second["champion_version"] == first["version"]
    assert json.loads(Path("outputs/register/decision.json").read_text()) == second
    metrics = json.loads(Path("outputs/metrics/register.json").read_text())
    assert set(metrics) == {"promoted", "zero_shot.macro_auc", "champion_value"}  # results only: no run id, version
    assert metrics["promoted"] is False
    assert metrics["zero_shot.macro_auc"] == 0.705
    record = json.loads(Path("outputs/runs/register.json").read_text())
    assert record["version"] == second["version"]
    assert "| zero_shot.macro_auc | 0.7050 | [0.6550, 0.7550] |" in Path("outputs/register/model_card.md").read_text()

    client = MlflowClient()
    version = client.get_model_version("hlip-demo", second["version"])
    assert version.tags["run.pretrain"] == "b" * 32
    assert version.tags["benchmark.fingerprint"] == "demo-0123abcd"  # what the gate compares champions on
    assert version.tags["run.register"] == record["mlflow_run_id"]
    assert version.description.startswith("# hlip-demo v2")
    run_artifacts = {a.path for a in client.list_artifacts(record["mlflow_run_id"])}
    assert {"decision.json", "model_card.md"} <= run_artifacts
    assert client.get_run(record["mlflow_run_id"]).data.metrics["zero_shot.macro_auc"] == 0.705
