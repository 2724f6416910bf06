"""Scheduled retraining goes through DVC and leaves true lineage (the real pipeline, a real Prefect server).

A scratch copy of the repository with a tiny demo corpus as `data/` runs the `pipeline` flow to completion; then
new studies arrive and the flow is triggered again: only the stages DVC found stale run, the saved commit records
the new data's md5 in `data.dvc`, and `hlip lineage` of the new version reports that commit's lock and data. A
third trigger with nothing new runs no stage. Slow: two tiny pipeline runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.dvc_repo import copy_tree

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    """A real temporary Prefect server; the stage processes DVC starts report to it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300), pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
        yield


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()


def lock_at(repo: Path, commit: str) -> dict[str, Any]:
    return dict(yaml.safe_load(git(repo, "show", f"{commit}:dvc.lock"))["stages"])


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[tuple[Path, Path]]]:
    """The repository's files, the corpus as `data/` minus two held-back studies, tiny training, one commit."""
    from demo_corpus import DemoCorpusConfig, generate_corpus

    corpus = tmp_path / "corpus"
    generate_corpus(corpus, DemoCorpusConfig.tiny(seed=5, n_train_studies=10, n_benchmark_studies=10), workers=1)
    repo = copy_tree(tmp_path / "repo")
    (repo / "dvc.lock").unlink(missing_ok=True)
    shutil.copytree(corpus, repo / "data")
    patients = sorted(p for p in (repo / "data/train/dicom").glob("*/*") if p.is_dir())
    held = [(p, tmp_path / "held" / p.name) for p in patients[-2:]]
    for source, dest in held:
        shutil.move(source, dest.parent.mkdir(parents=True, exist_ok=True) or dest)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["workers"] = 1
    params["ingest"]["preprocess"]["size"] = [16, 32, 32]  # hlip-tiny's scan size
    params["pretrain"].update(model="hlip-tiny", batch_size=4)
    params["pretrain"]["warmup"]["epochs"] = 1
    params["pretrain"]["contrastive"]["epochs"] = 1
    params["evaluate"].update(n_boot=20, linear_probe=False, val_fraction=0.5)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "code and params")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `python` in dvc.yaml
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HLIP_PARAMS", raising=False)
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    return repo, held


@pytest.mark.timeout(2700)  # three pipeline runs: 11 min for the first alone on 2 cores shared with two trainings
def test_scheduled_runs_go_through_dvc_and_lineage_finds_them(
    prefect_server: None, scratch: tuple[Path, list[tuple[Path, Path]]]
) -> None:
    from flows.pipeline import pipeline_flow
    from hlip.lineage.repro import BRANCH, data_md5, pipeline_order
    from hlip.tracking.lineage import resolve_lineage
    from hlip.tracking.runs import tracking_uri

    repo, held = scratch
    code_commit = git(repo, "rev-parse", "HEAD")
    first = pipeline_flow(str(repo))
    assert first["ran"] == pipeline_order(repo)  # a fresh pipeline: every stage, in order
    assert git(repo, "rev-parse", BRANCH) == first["commit"]
    assert git(repo, "rev-parse", "HEAD") == code_commit  # the checkout stays on the code commit
    decision = json.loads((repo / "outputs/register/decision.json").read_text())
    assert decision["promoted"] is True  # the first version of a name becomes champion
    assert first["version"] == f"{decision['name']}/{decision['version']}"

    for source, dest in held:  # new studies arrive
        shutil.move(dest, source)
    second = pipeline_flow(str(repo))
    assert second["data_changed"]
    new_md5 = data_md5(repo)
    assert second["data_md5"] == new_md5 != first["data_md5"]
    assert yaml.safe_load(git(repo, "show", f"{second['commit']}:data.dvc"))["outs"][0]["md5"] == new_md5
    assert "ingest" in second["ran"]
    old_lock, new_lock = lock_at(repo, first["commit"]), lock_at(repo, second["commit"])
    for stage in pipeline_order(repo):  # a stage ran exactly when what it depends on had changed
        assert (stage in second["ran"]) == (old_lock[stage] != new_lock[stage]), stage

    from mlflow import MlflowClient

    uri = tracking_uri(repo / "outputs/mlflow")
    name, version = second["version"].split("/")
    for ref in (f"models:/{name}/{version}", f"models:/{name}@challenger"):
        got = resolve_lineage(ref, repo, MlflowClient(uri, registry_uri=uri))
        if ref.endswith("challenger") and got.version != version:
            continue  # promoted: the challenger alias stays on the other version
        assert got.lineage_commit == second["commit"]
        assert got.data_dvc_md5 == new_md5
        assert {s.name: s.deps for s in got.stages}["ingest"] == {
            d["path"]: d.get("md5", "") for d in new_lock["ingest"]["deps"]
        }

    third = pipeline_flow(str(repo))
    assert third["ran"] == []
    assert not third["data_changed"]
    assert "commit" not in third
    assert git(repo, "rev-parse", BRANCH) == second["commit"]
