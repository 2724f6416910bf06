"""Lineage of a registered model version against a real git repository and a real (SQLite) MLflow registry."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hlip.cli.lineage import lineage as lineage_command
from hlip.tracking.lineage import LineageError, parse_model_uri, resolve_lineage
from hlip.tracking.runs import stage_run

DVC_LOCK = {
    "schema": "2.0",
    "stages": {
        "ingest": {
            "cmd": "python -m flows.ingest",
            "deps": [{"path": "data/train", "hash": "md5", "md5": "aaa111.dir"}],
            "params": {"params.yaml": {"ingest": {"workers": 2}}},
            "outs": [{"path": "outputs/ingest", "hash": "md5", "md5": "bbb222.dir"}],
        },
        "validate": {
            "cmd": "python -m flows.validate",
            "deps": [{"path": "outputs/ingest", "hash": "md5", "md5": "bbb222.dir"}],
            "outs": [{"path": "outputs/validate", "hash": "md5", "md5": "ccc333.dir"}],
        },
        "pretrain": {
            "cmd": "python -m flows.pretrain",
            "deps": [{"path": "outputs/ingest", "hash": "md5", "md5": "bbb222.dir"}],
            "outs": [{"path": "outputs/pretrain", "hash": "md5", "md5": "ddd444.dir"}],
        },
    },
}
PARAMS = {"ingest": {"workers": 2}, "pretrain": {"lr": 0.001}}
MODEL = "hlip-demo"


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A committed repo; ingest/validate/pretrain runs tagged by `stage_run`; version 1 (tagged) and 2 (untagged).

    Module-scoped (creating the MLflow store takes seconds): tests add versions, they never change these two.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _project(tmp_path_factory.mktemp("lineage") / "repo", monkeypatch)


def _project(repo: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import mlflow

    repo.mkdir()
    (repo / "dvc.lock").write_text(yaml.safe_dump(DVC_LOCK, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (repo / "data.dvc").write_text("outs:\n- md5: 61b4data.dir\n  path: data\n")
    (repo / ".gitignore").write_text("outputs/\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pipeline")
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = repo / "outputs" / "mlflow"
    runs = {}
    for stage in ("ingest", "validate", "pretrain"):
        with stage_run(stage, {stage: PARAMS.get(stage, {})}, root=store) as run:
            if stage == "validate":
                mlflow.log_text('{"passed": true}', "validation.json")
            runs[stage] = run.info.run_id
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL)
    tags = {k: v for k, v in client.get_run(runs["pretrain"]).data.tags.items() if k.startswith(("git.", "data."))}
    tags["params.sha256"] = client.get_run(runs["pretrain"]).data.tags["params.sha256"]
    client.create_model_version(MODEL, f"runs:/{runs['pretrain']}/model", run_id=runs["pretrain"], tags=tags)
    client.create_model_version(MODEL, f"runs:/{runs['pretrain']}/model", run_id=runs["pretrain"])
    client.set_registered_model_alias(MODEL, "champion", "2")
    # the working tree moves on after the commit: lineage must read the committed files
    (repo / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "pretrain": {"lr": 0.5}}))
    return {"repo": repo, "commit": commit, "runs": runs, "client": client, "uri": mlflow.get_tracking_uri()}


def test_every_field_resolves_from_the_commit_and_the_runs(project: dict[str, Any]) -> None:
    got = resolve_lineage(f"models:/{MODEL}/1", project["repo"], project["client"])
    assert got.git_commit == project["commit"]
    assert got.git_dirty == "False"
    assert got.source == f"git commit {project['commit'][:12]}"
    assert got.data_md5 == got.data_dvc_md5 == "61b4data.dir"
    assert [s.name for s in got.stages] == ["ingest", "validate", "pretrain"]
    assert got.stages[0].deps == {"data/train": "aaa111.dir"}
    assert got.stages[0].outs == {"outputs/ingest": "bbb222.dir"}
    assert got.stages[0].params == {"ingest": {"workers": 2}}
    assert got.params == PARAMS  # the committed params, not the edited working tree
    assert {r.stage: r.run_id for r in got.runs} == project["runs"]
    assert {r.experiment for r in got.runs} == {"ingest", "validate", "pretrain"}
    assert got.validation is not None
    assert got.validation.outputs == {"outputs/validate": "ccc333.dir"}
    assert got.validation.run_id == project["runs"]["validate"]
    assert got.validation.artifacts == (f"runs:/{project['runs']['validate']}/validation.json",)
    assert got.source_run_id == project["runs"]["pretrain"]
    assert got.warnings == ()


def test_alias_resolves_and_an_untagged_version_falls_back_to_its_run(project: dict[str, Any]) -> None:
    got = resolve_lineage(f"models:/{MODEL}@champion", project["repo"], project["client"])
    assert got.version == "2"
    assert "champion" in got.aliases
    assert got.git_commit == project["commit"]
    assert len(got.params_sha256) == 64


def test_unknown_commit_reads_the_working_tree_and_warns(project: dict[str, Any]) -> None:
    client = project["client"]
    run_id = project["runs"]["pretrain"]
    version = client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id, tags={"git.commit": "0" * 40})
    got = resolve_lineage(f"models:/{MODEL}/{version.version}", project["repo"], client)
    assert got.source == "working tree"
    assert got.params["pretrain"] == {"lr": 0.5}
    assert any("is not in the repository" in w for w in got.warnings)
    assert any("params.yaml in working tree hashes to" in w for w in got.warnings)
    # no stage run was tagged with that commit: each stage says so
    assert got.runs == ()
    assert sum("no MLflow run tagged" in w for w in got.warnings) == 3


def test_missing_version_and_bad_uris_give_clear_errors(project: dict[str, Any]) -> None:
    with pytest.raises(LineageError, match=f"models:/{MODEL}/9: no such registered model version"):
        resolve_lineage(f"models:/{MODEL}/9", project["repo"], project["client"])
    with pytest.raises(LineageError, match="no such registered model version"):
        resolve_lineage(f"models:/{MODEL}@nobody", project["repo"], project["client"])
    for bad in ("runs:/abc/model", "models:/x/latest", "models:/"):
        with pytest.raises(LineageError, match="expected models:/<name>/<version>"):
            parse_model_uri(bad)
    assert parse_model_uri("models:/a/3") == ("a", "3", None)


def test_version_without_commit_tag_is_an_error(project: dict[str, Any]) -> None:
    client = project["client"]
    version = client.create_model_version(MODEL, "file:///somewhere/model")
    with pytest.raises(LineageError, match=r"carries no git\.commit tag"):
        resolve_lineage(f"models:/{MODEL}/{version.version}", project["repo"], client)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(lineage_command)
    return app


def test_cli_prints_tables_and_json(project: dict[str, Any]) -> None:
    runner = CliRunner()
    args = [f"models:/{MODEL}/1", "--repo", str(project["repo"]), "--tracking-uri", project["uri"]]
    table = runner.invoke(cli(), args)
    assert table.exit_code == 0, table.output
    assert project["commit"] in table.output
    assert "ccc333.dir" in table.output
    assert project["runs"]["validate"] in table.output
    as_json = runner.invoke(cli(), [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["git_commit"] == project["commit"]
    assert data["params"] == PARAMS
    missing = runner.invoke(cli(), [f"models:/{MODEL}/7", "--tracking-uri", project["uri"]])
    assert missing.exit_code == 1
    assert "no such registered model version" in missing.output


def test_run_tags_on_the_version_name_the_stage_runs(project: dict[str, Any]) -> None:
    import mlflow

    client = project["client"]
    untagged = client.create_run(client.get_experiment_by_name("validate").experiment_id).info.run_id
    mlflow.MlflowClient().set_terminated(untagged)
    tags = {"git.commit": project["commit"], "data.dvc_md5": "61b4data.dir", "run.validate": untagged,
            "run.label": "f" * 32}  # fmt: skip
    version = client.create_model_version(MODEL, "file:///somewhere/model", tags=tags)
    got = resolve_lineage(f"models:/{MODEL}/{version.version}", project["repo"], client)
    runs = {r.stage: r.run_id for r in got.runs}
    assert runs["validate"] == untagged  # named by the version, although not tagged with the commit
    assert runs["ingest"] == project["runs"]["ingest"]  # found by its tags
    assert any(w.startswith(f"stage label: the version names run {'f' * 32}") for w in got.warnings)


def test_a_scheduled_versions_lineage_commit_holds_its_lock_and_data(project: dict[str, Any]) -> None:
    """A scheduled run saves dvc.lock and data.dvc as a commit on a branch (the checkout untouched) and tags the
    version with it: lineage reads the new lock and data there, not the older ones at the code commit."""
    from hlip.lineage.repro import BRANCH, save_result
    from hlip.tracking.lineage import tag_lineage_commit

    repo, client = project["repo"], project["client"]
    before = {name: (repo / name).read_text() for name in ("dvc.lock", "data.dvc")}
    new_lock = {**DVC_LOCK, "stages": {"ingest": {**DVC_LOCK["stages"]["ingest"], "outs": [
        {"path": "outputs/ingest", "hash": "md5", "md5": "fff999.dir"}]}}}  # fmt: skip
    (repo / "dvc.lock").write_text(yaml.safe_dump(new_lock, sort_keys=False))
    (repo / "data.dvc").write_text("outs:\n- md5: 77newdata.dir\n  path: data\n")
    try:
        saved = save_result(repo, "scheduled run: new studies")
    finally:
        for name, text in before.items():
            (repo / name).write_text(text)
    assert git(repo, "rev-parse", "HEAD") == project["commit"]  # the checkout's HEAD did not move
    assert git(repo, "rev-parse", BRANCH) == saved
    assert git(repo, "rev-parse", f"{saved}^") == project["commit"]
    run_id = project["runs"]["pretrain"]
    tags = {"git.commit": project["commit"], "data.dvc_md5": "77newdata.dir"}
    version = client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    tag_lineage_commit(MODEL, version.version, saved, client)
    got = resolve_lineage(f"models:/{MODEL}/{version.version}", repo, client)
    assert got.lineage_commit == saved
    assert got.source == f"git commit {saved[:12]}"
    assert got.data_dvc_md5 == "77newdata.dir"
    assert got.stages[0].outs == {"outputs/ingest": "fff999.dir"}
    assert not any("data.dvc in" in w for w in got.warnings)
