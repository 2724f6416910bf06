"""The sweep's real objective end to end: two workers on one SQLite study, each trial a short hlip-tiny
pre-training scored after every contrastive epoch by the quick zero-shot evaluator on a tiny synthetic benchmark;
plus the runner alone (only evaluated epochs reach Optuna, a trial never resumes another's checkpoints).

Pruning is left to the project's median pruner and is not asserted: whether it fires depends on which worker's
trial reports first and on the AUCs of barely trained models, and no value-based pruner can be made to prune a
real trial deterministically without faking the values. A pruned trial, when there is one, is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DEID_SECRET = "sweep-test-deid-secret"
CLASSES = ("normal", "stroke", "glioma", "meningioma", "metastasis")
METRIC = "zero_shot.macro_auc"
SPACE = ("pretrain.contrastive.lr", "pretrain.warmup.lr")  # the project's own sweep space (params.yaml)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ingest/train` + its labels (training), `benchmark/` + `benchmark_labels.csv` (the demo benchmark's layout,
    its study keys hashed from UIDs with `DEID_SECRET`), and a tiny BERT, under one folder."""
    from hlip.data.deid import HashKey
    from testkit.training_data import write_synthetic_part, write_training_folder

    root = write_training_folder(tmp_path_factory.mktemp("sweep_pretrain"), n_studies=12, max_scans=2)

    bench = root / "benchmark"
    write_synthetic_part(bench, n_studies=11, max_scans=2, seed=1)  # the 11th is not `ok`: left out
    key = HashKey(DEID_SECRET)
    uids = {f"study{i:04d}": f"1.2.840.99.{i}" for i in range(11)}
    rename = {old: key.hash("study", uid) for old, uid in uids.items()}
    for table in ("studies", "scans", "reports"):
        frame = pd.read_parquet(bench / f"{table}.parquet")
        frame["study_key"] = frame["study_key"].map(rename)
        frame.to_parquet(bench / f"{table}.parquet")
    # two studies per class: the seeded validation split takes one of each, so every class AUC is defined
    rows = [{"study_instance_uid": uids[f"study{i:04d}"], "label": CLASSES[i % 5]} for i in range(10)]
    pd.DataFrame(rows).to_csv(root / "benchmark_labels.csv", index=False)
    return root


def tiny_params(params: dict[str, Any], root: Path, sweep_dir: Path) -> None:
    """Point the project's params at the synthetic data: hlip-tiny, 1 warm-up + 2 contrastive epochs, 2 workers x
    3 trials on a SQLite study in `sweep_dir`; the sweep space, sampler and pruner stay the project's."""
    pretrain = params["pretrain"]
    pretrain.update(model="hlip-tiny", batch_size=4, threads=1, workers=0, eval_every=1,
                    model_overrides={"text": {"model_dir": str(root / "bert"), "context_length": 16}})  # fmt: skip
    pretrain["data"].update(ingest_dir=str(root / "ingest"), labels_dir=str(root / "labels"), findings="",
                            scans={"mode": "max_n", "max_scans": 2, "kinds": []})  # fmt: skip
    pretrain["warmup"].update(epochs=1, warmup_steps=1)
    pretrain["contrastive"].update(epochs=2, warmup_steps=1)
    params["ingest"]["preprocess"]["size"] = [16, 32, 32]  # the synthetic parts' scans (the study contract checks)
    params["evaluate"].update(data_root=str(root / "benchmark"),
                              benchmark_args={"labels_csv": str(root / "benchmark_labels.csv")})  # fmt: skip
    params["sweep"].update(enabled=True, objective="pretrain", n_trials=3, n_workers=2, study_name="pretrain-test",
                           storage=f"sqlite:///{sweep_dir / 'optuna.db'}", metric=METRIC)  # fmt: skip
    assert tuple(p["name"] for p in params["sweep"]["space"]) == SPACE


def trial_folders() -> dict[Path, dict[str, Any] | None]:
    """Each trial's training folder -> its summary.json (None when the trial did not finish)."""
    folders = sorted(p for p in Path("outputs/pretrain/sweep").iterdir() if p.is_dir())
    return {f: json.loads((f / "summary.json").read_text()) if (f / "summary.json").is_file() else None
            for f in folders}  # fmt: skip


def test_pretrain_objective_sweeps_two_workers_and_scores_every_epoch(
    synthetic_root: Path,
    project_workdir: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    import optuna

    from flows.sweep import sweep_flow

    tracked = (REPO / "params.yaml").read_bytes()
    sweep_dir = tmp_path / "study"
    sweep_dir.mkdir()
    workdir = project_workdir(synthetic_root, lambda p: tiny_params(p, synthetic_root, sweep_dir))
    monkeypatch.delenv("HLIP_OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("HLIP_DEID_KEY", DEID_SECRET)  # the workers inherit it: the benchmark's keys match
    params = yaml.safe_load(Path("params.yaml").read_text())
    defaults = {"pretrain.contrastive.lr": params["pretrain"]["contrastive"]["lr"],
                "pretrain.warmup.lr": params["pretrain"]["warmup"]["lr"]}  # fmt: skip
    written = Path("params.yaml").read_bytes()

    record = sweep_flow()

    study = optuna.load_study(study_name="pretrain-test", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 3
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    states = {t.number: t.state.name for t in trials}
    assert set(states.values()) <= {"COMPLETE", "PRUNED"}, states
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 2  # trials 0 and 1 run before 2 trials completed: the median pruner cannot prune them

    mlflow.set_tracking_uri(f"sqlite:///{(workdir / 'outputs/mlflow/mlflow.db').resolve()}")
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["sweep"], output_format="list")
    parent = next(r for r in runs if r.data.tags.get("stage") == "sweep")
    children = {int(r.data.tags["trial.number"]): r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}  # fmt: skip
    assert set(children) == set(states)

    folders = trial_folders()
    assert len(folders) == 3  # one fresh folder per trial
    assert not any((f / "checkpoints").exists() for f in folders)  # a trial never resumes: checkpoints removed
    summaries = [s for s in folders.values() if s is not None]
    assert len(summaries) == len(complete)  # pruned trials stop before exporting
    for trial in complete:
        child = children[trial.number]
        assert child.data.tags["trial.state"] == "completed"
        values = trial.intermediate_values
        assert sorted(values) == [1, 2]  # one value per contrastive epoch
        assert all(0.0 <= v <= 1.0 for v in values.values()), values
        assert trial.value == values[2] == child.data.metrics[METRIC]
        history = client.get_metric_history(child.info.run_id, f"intermediate/{METRIC}")
        assert {m.step: m.value for m in history} == pytest.approx(values)
        # The sampled values were applied: logged on the child run, and the trial's own training used them.
        assert child.data.params == {k: str(v) for k, v in trial.params.items()}
        assert all(trial.params[k] != defaults[k] for k in SPACE)
        mine = [s for s in summaries if s["stages"]["contrastive"]["lr"] == trial.params["pretrain.contrastive.lr"]]
        assert len(mine) == 1
        assert mine[0]["stages"]["warmup"]["lr"] == trial.params["pretrain.warmup.lr"]
        assert len(mine[0]["stages"]["contrastive"]["epoch_losses"]) == 2  # trained from scratch
        assert mine[0]["eval"][METRIC] == pytest.approx(trial.value)
    for number, state in states.items():
        if state == "PRUNED":
            child = children[number]
            assert child.data.tags["trial.state"] == "pruned"
            assert METRIC not in child.data.metrics
            assert 1 <= len(trials[number].intermediate_values) <= 2

    best = yaml.safe_load(Path("outputs/sweep/best_params.yaml").read_text())
    assert best["trial"] == study.best_trial.number
    assert best["value"] == study.best_value == record["value"] == max(t.value or 0.0 for t in complete)
    assert best["params"] == {k: study.best_params[k] for k in SPACE}  # dotted pretrain.* keys
    assert parent.data.metrics[f"best/{METRIC}"] == pytest.approx(study.best_value)
    assert Path("params.yaml").read_bytes() == written  # nothing applied to the working params
    assert (REPO / "params.yaml").read_bytes() == tracked


def test_runner_reports_only_evaluated_epochs_and_never_resumes_a_pruned_trial(
    synthetic_root: Path,
    project_workdir: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optuna

    from hlip.tuning.pretrain_runner import make_pretrain_runner

    def edit(params: dict[str, Any]) -> None:
        tiny_params(params, synthetic_root, Path("unused"))
        params["pretrain"]["warmup"]["enabled"] = "false"
        params["pretrain"].update(eval_every=2, checkpoint_every=1)

    project_workdir(synthetic_root, edit)
    monkeypatch.setenv("HLIP_DEID_KEY", DEID_SECRET)
    runner = make_pretrain_runner(yaml.safe_load(Path("params.yaml").read_text()), metric=METRIC)
    overrides = {"pretrain.contrastive.lr": 1e-3, "pretrain.warmup.lr": 1e-3}

    def prune(step: int, value: float) -> None:
        raise optuna.TrialPruned(f"pruned at {step}")

    with pytest.raises(optuna.TrialPruned, match="pruned at 2"):  # epoch 1's training loss never reached it
        runner(overrides, prune)
    reported: list[tuple[int, float]] = []
    value = runner(overrides, lambda step, v: reported.append((step, v)))  # the same values again

    assert [step for step, _ in reported] == [2]
    assert reported[0][1] == value
    assert 0.0 <= value <= 1.0
    folders = trial_folders()
    assert len(folders) == 2  # the second trial did not reuse the pruned one's folder
    (summary,) = [s for s in folders.values() if s is not None]
    assert len(summary["stages"]["contrastive"]["epoch_losses"]) == 2  # both epochs trained, nothing resumed
    assert summary["eval"][METRIC] == pytest.approx(value)
    assert not any((f / "checkpoints").exists() for f in folders)
