"""Register and serve: log the pyfunc, register versions, promotion gate, load `@champion` in a fresh process.

Everything runs against a real embedded MLflow store (SQLite + local artifacts) under tmp_path.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hlip.data.config import IngestConfig
from hlip.tracking.promotion import CHALLENGER, CHAMPION, PromotionDecision, promote, write_decision
from hlip.tracking.registry import read_metrics, read_run_ids, register_study_model
from hlip.tracking.runs import lineage_tags, stage_run, tracking_uri

pytestmark = pytest.mark.integration
NAME = "hlip-demo"
PREDICT = """
import json, sys, time
t0 = time.perf_counter()
import mlflow, pandas as pd
t1 = time.perf_counter()
model = mlflow.pyfunc.load_model("models:/{name}@champion")
t2 = time.perf_counter()
out = model.predict(pd.DataFrame({{"study_path": json.loads(sys.argv[1])}}))
t3 = time.perf_counter()
out.to_json(sys.argv[2], orient="records")
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "predict_s": t3 - t2}}))
"""


def register_once(
    model_dir: Path, metrics_file: Path, prompts: dict[str, Any], ingest: IngestConfig, margin: float = 0.0
) -> tuple[str, PromotionDecision]:
    """What the register flow does, without Prefect: log, register with tags and card, run the gate."""
    from hlip.tracking.pyfunc import ServingSpec, log_study_model

    metrics = read_metrics(metrics_file)
    with stage_run("register", {"register": {"margin": margin}}, root=Path("mlflow")) as run:
        spec = ServingSpec.resolve(model_dir, prompts, ingest)
        info = log_study_model(spec)
        run_ids = {**read_run_ids([Path("outputs/runs/pretrain.json")]), "register": run.info.run_id}
        version, _ = register_study_model(info.model_uri, spec, NAME, metrics, lineage_tags(), run_ids)
        decision = promote(NAME, version.version, "zero_shot.macro_auc", margin)
        write_decision(decision, Path("outputs/register/decision.json"))
    return str(version.version), decision


def predict_fresh(studies: list[Path], out: Path) -> dict[str, float]:
    """`models:/hlip-demo@champion` loaded and run in a new Python process; returns its timings."""
    roots = ",".join(str(s.parent) for s in studies)  # the deployment allows the studies' folders (hlip.serving)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(Path("mlflow").resolve()), "HLIP_SERVE_ROOTS": roots}
    proc = subprocess.run(
        [sys.executable, "-c", PREDICT.format(name=NAME), json.dumps([str(s) for s in studies]), str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=out.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_champion_serves_a_dicom_study_in_a_fresh_process(
    store: Path,
    exported_model: Path,
    phi_study: tuple[Path, Path, list[str]],
    write_metrics: Callable[..., Path],
    prompts: dict[str, Any],
    ingest_config: IngestConfig,
    tmp_path: Path,
) -> None:
    import mlflow
    import pandas as pd
    import torch

    from hlip.data import manifest
    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest
    from hlip.data.sampling import canonical_order
    from hlip.evaluation.embeddings import embed_texts
    from hlip.evaluation.prompts import parse_prompt_set
    from hlip.evaluation.zero_shot import zero_shot_scores
    from hlip.models.export import load_model
    from hlip.models.factory import create_tokenizer

    study, localizer_only, identifiers = phi_study
    version, decision = register_once(exported_model, write_metrics(0.7), prompts, ingest_config)
    assert decision.promoted
    assert version == "1"

    text_dir = exported_model.parent / "bert"
    text_dir.rename(text_dir.with_name("bert.away"))  # serving must not need the text model's source folder
    try:
        timings = predict_fresh([study, localizer_only, tmp_path / "missing"], tmp_path / "served.json")
    finally:
        text_dir.with_name("bert.away").rename(text_dir)
    served = pd.read_json(tmp_path / "served.json", orient="records")

    # the same study ingested here, predicted in-process through `scan_paths`
    key = HashKey.from_env()
    part = tmp_path / "ingested"
    ingest(study, part, config=ingest_config, key=key)
    scans = manifest.read_table(part, "scans")
    order = canonical_order([s["kind"] for s in scans], [s["plane"] for s in scans], [s["scan_key"] for s in scans])
    local = mlflow.pyfunc.load_model(f"models:/{NAME}@champion", model_config={"serving": {"roots": [str(part)]}})
    here = local.predict(pd.DataFrame({"scan_paths": [[str(part / scans[i]["path"]) for i in order]]}))

    row = served.iloc[0]
    assert row["error"] == ""
    assert row["n_scans"] == min(len(scans), 8) >= 2
    assert json.loads(row["quarantine"]).get("localizer", 0) >= 1  # the localizer was set aside, not fatal
    for finding in prompts["findings"]:
        assert 0.0 <= row[finding] <= 1.0
        assert row[finding] == pytest.approx(here[finding].iloc[0], abs=1e-5)
    assert len(row["embedding"]) == 16  # hlip-tiny embed_dim
    assert np.linalg.norm(row["embedding"]) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(row["embedding"], here["embedding"].iloc[0], atol=1e-5)
    # evaluation's zero-shot scoring of the served embedding gives the served probabilities: no serving drift
    model = load_model(exported_model)
    tokenizer = create_tokenizer(model.cfg)
    evaluated = zero_shot_scores(
        np.asarray([row["embedding"]], np.float32), parse_prompt_set(prompts), list(prompts["findings"]),
        "multilabel", lambda texts: embed_texts(model, tokenizer, torch.device("cpu"), texts),
        float(model.logit_scale.detach().exp().clamp(max=100.0)),
    )  # fmt: skip
    assert evaluated.rule == "pair"
    np.testing.assert_allclose([row[f] for f in prompts["findings"]], evaluated.scores[0], atol=1e-5)
    # a study with no usable scan and a missing folder give an error row each, not a failed batch
    assert "no usable scan" in served.iloc[1]["error"]
    assert "localizer" in served.iloc[1]["quarantine"]
    assert served.iloc[2]["error"].startswith("path_not_allowed:")  # missing: refused like a path outside the roots
    assert all(math.isnan(served.iloc[i][f]) for i in (1, 2) for f in prompts["findings"])
    print(f"fresh-process timings: {timings}")

    # no identifier of the test study anywhere in the tracking store (database, artifacts, code, tags, params)
    leaks = {
        ident: str(path)
        for path in [p for p in Path("mlflow").rglob("*") if p.is_file()]
        for ident in identifiers
        if ident.encode() in path.read_bytes() or ident.upper().encode() in path.read_bytes()
    }
    assert not leaks, f"identifiers found in the MLflow store: {leaks}"


def test_promotion_gate_moves_champion_only_on_a_real_improvement(
    store: Path,
    exported_model: Path,
    write_metrics: Callable[..., Path],
    prompts: dict[str, Any],
    ingest_config: IngestConfig,
) -> None:
    from functools import partial

    from mlflow import MlflowClient

    register = partial(register_once, exported_model, prompts=prompts, ingest=ingest_config, margin=0.02)
    Path("outputs/runs").mkdir(parents=True)
    Path("outputs/runs/pretrain.json").write_text(json.dumps({"mlflow_run_id": "a" * 32}))
    v1, first = register(write_metrics(0.70, "m1.json"))
    v2, worse = register(write_metrics(0.65, "m2.json"))
    _v3, small = register(write_metrics(0.71, "m3.json"))  # +0.01 <= margin
    v4, better = register(write_metrics(0.75, "m4.json"))
    client = MlflowClient()

    assert (first.promoted, first.champion_version) == (True, None)
    assert (worse.promoted, worse.champion_version, worse.champion_value) == (False, v1, 0.70)
    assert worse.challenger_value == 0.65
    assert "does not beat" in worse.reason
    assert not small.promoted
    assert (better.promoted, better.champion_version, better.champion_value) == (True, v1, 0.70)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == v4
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == v4

    tags = client.get_model_version(NAME, v2).tags
    assert tags["promotion.promoted"] == "false"
    assert tags["promotion.champion_version"] == v1
    assert float(tags["promotion.challenger_value"]) == 0.65
    assert float(tags["promotion.margin"]) == 0.02
    assert float(tags["metric.zero_shot.macro_auc_ci_low"]) == pytest.approx(0.60)
    assert tags["run.pretrain"] == "a" * 32
    assert len(tags["run.register"]) == 32
    assert {"git.commit", "data.dvc_md5", "params.sha256"} <= set(tags)
    assert client.get_model_version(NAME, v1).tags["promotion.superseded_by"] == v4
    saved = json.loads(Path("outputs/register/decision.json").read_text())
    assert saved == better.as_dict()

    card = client.get_model_version(NAME, v2).description
    assert "| zero_shot.macro_auc | 0.6500 | [0.6000, 0.7000] |" in card
    assert "Research only" in card
    assert "data.dvc md5" in card
    assert "16 x 32 x 32" in card
    assert "8 x 7 x 7" in card
