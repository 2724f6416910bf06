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
    declared = _declared_outputs("register")
    assert declared, "dvc.yaml declares no output of register"
    first_outputs = {path: Path(path).read_bytes() for path in declared}
    second = run(0.705)  # +0.005 is within the margin: stays challenger
    assert first["promoted"]
    assert not second["promoted"]
    assert second["champion_version"] == first["version"]
    assert json.loads(Path("outputs/register/decision.json").read_text()) == second
    metrics = json.loads(Path("outputs/metrics/register.json").read_text())
    assert metrics == {"zero_shot.macro_auc": 0.705}  # results only: no run id, version or history-dependent decision
    request = json.loads(Path("outputs/register/request.json").read_text())  # the stage's DVC output
    assert request["name"] == "hlip-demo"
    assert request["value"] == 0.705
    assert request["benchmark_fingerprint"] == "demo-0123abcd"
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

    # What dvc.lock records of this stage is a function of its inputs, not of the registry's history: the same
    # metric registered again (a third version, not promoted: v1 stays champion) leaves byte for byte the declared
    # outputs that promoting v1 on an empty registry left.
    third = run(0.70)
    assert not third["promoted"]  # first was promoted (asserted above)
    assert {path: Path(path).read_bytes() for path in declared} == first_outputs


def _declared_outputs(stage: str) -> list[str]:
    """The outputs and metrics files `dvc.yaml` declares for `stage` (what `dvc.lock` hashes)."""
    spec = yaml.safe_load((Path(__file__).parents[3] / "dvc.yaml").read_text())["stages"][stage]
    entries = [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]
