"""Lineage of a registered model version: code, data, parameters, pipeline stages and their MLflow runs.

From ``models:/<name>/<version>`` (or ``models:/<name>@<alias>``) it reads the version's lineage tags (those of
`hlip.tracking.runs.lineage_tags`: ``git.commit``, ``git.dirty``, ``data.dvc_md5``, ``params.sha256``; the
version's source run supplies any the version lacks), then, at that git commit: every stage of ``dvc.lock`` with
its dependency/output hashes, the md5 recorded in ``data.dvc``, and ``params.yaml``. When the commit is not in the
repository it reads the working tree instead and says so in `Lineage.warnings`; when ``params.yaml`` is missing
too, it takes the parameters logged on the source run. It then finds each stage's MLflow run (tagged with the same
commit and data md5, and its ``stage``; a ``run.<stage>`` version tag names it
directly) and the validation report of that data (the ``validate`` stage's output
hash in ``dvc.lock`` and the report artifacts of the validate run).

A version made by a scheduled run (``flows/pipeline.py``, through DVC) also carries ``lineage.commit``: the commit
that run saved with its ``dvc.lock`` and ``data.dvc`` (on the ``hlip/scheduled`` branch, parent the code commit).
``dvc.lock``, ``data.dvc`` and ``params.yaml`` are then read at that commit, not at ``git.commit``, which holds the
code but the lock of an earlier run.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hlip.lineage.repro import LINEAGE_COMMIT_TAG
from hlip.tracking.registry import RUN_TAG  # version tags ``run.<stage>`` = that stage's MLflow run id

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

LINEAGE_TAGS = ("git.commit", "git.dirty", "data.dvc_md5", "params.sha256")
VALIDATE_STAGE = "validate"


class LineageError(LookupError):
    """The model version, or what its lineage points at, cannot be found; the message says which and why."""


@dataclass(frozen=True)
class StageLock:
    """One stage of ``dvc.lock``: its command, dependency and output hashes (path -> md5), its parameters."""

    name: str
    cmd: str
    deps: dict[str, str]
    outs: dict[str, str]
    params: dict[str, Any]


@dataclass(frozen=True)
class StageRun:
    """The MLflow run of one stage for this commit and data."""

    stage: str
    run_id: str
    run_name: str
    experiment: str
    status: str
    start_time: str
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationRef:
    """The validation report of the data: its ``dvc.lock`` output hash and the validate run's report artifacts."""

    outputs: dict[str, str]
    run_id: str | None
    status: str | None
    artifacts: tuple[str, ...]


@dataclass(frozen=True)
class Lineage:
    """Everything a registered model version leads back to (see the module docstring)."""

    model_uri: str
    name: str
    version: str
    aliases: tuple[str, ...]
    source_run_id: str | None
    git_commit: str
    git_dirty: str
    data_md5: str
    params_sha256: str
    source: str
    data_dvc_md5: str | None
    stages: tuple[StageLock, ...]
    params: dict[str, Any]
    params_source: str
    runs: tuple[StageRun, ...]
    validation: ValidationRef | None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    lineage_commit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3`` -> ``(name, "3", None)``; ``models:/name@champion`` -> ``(name, None, "champion")``.

    Raises:
        LineageError: When `uri` is neither form.
    """
    body = uri.removeprefix("models:/")
    if body == uri or not body:
        raise LineageError(f"{uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>")
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        if name and alias and "/" not in name:
            return name, None, alias
    elif "/" in body:
        name, version = body.rsplit("/", 1)
        if name and version.isdigit():
            return name, version, None
    raise LineageError(f"{uri!r}: expected models:/<name>/<version> (a number) or models:/<name>@<alias>")


def resolve_lineage(model_uri: str, repo: Path = Path("."), client: MlflowClient | None = None) -> Lineage:
    """Build the `Lineage` of `model_uri` from the MLflow registry of `client` and the git repository `repo`.

    Raises:
        LineageError: When the version does not exist or carries no ``git.commit`` (nor does its run).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    name, version, alias = parse_model_uri(model_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise LineageError(f"{model_uri}: no such registered model version ({exc.message.splitlines()[0]})") from exc
    warnings: list[str] = []
    run = _get_run(client, mv.run_id) if mv.run_id else None
    if mv.run_id and run is None:
        warnings.append(f"the version's source run {mv.run_id} is not in the tracking store")
    tags = {key: mv.tags.get(key) or (run.data.tags.get(key) if run else None) or "unknown" for key in LINEAGE_TAGS}
    commit = tags["git.commit"]
    if commit == "unknown":
        raise LineageError(f"{model_uri}: the version (and its source run) carries no git.commit tag; lineage unknown")
    if tags["git.dirty"] == "True":
        warnings.append("the run was made from a dirty working tree: the commit does not hold all of its code")

    lineage_commit = mv.tags.get(LINEAGE_COMMIT_TAG)  # a scheduled run's saved lock and data, else the code commit
    files, source = _files_at(repo, lineage_commit or commit, ("dvc.lock", "params.yaml", "data.dvc"), warnings)
    stages = _parse_lock(files["dvc.lock"])
    if files["dvc.lock"] is None:
        warnings.append(f"no dvc.lock in {source}: stage hashes unknown")
    data_dvc_md5 = _dvc_md5(files["data.dvc"])
    if data_dvc_md5 and tags["data.dvc_md5"] not in ("unknown", data_dvc_md5):
        warnings.append(f"data.dvc in {source} records {data_dvc_md5}, the model was tagged {tags['data.dvc_md5']}")
    params, params_source = _params(files["params.yaml"], source, tags["params.sha256"], run, warnings)

    named = {k.removeprefix(RUN_TAG): v for k, v in mv.tags.items() if k.startswith(RUN_TAG)}
    runs = _stage_runs(client, commit, tags["data.dvc_md5"], named, warnings)
    found = {r.stage for r in runs}
    for stage in stages:
        if stage.name not in found:
            warnings.append(
                f"stage {stage.name}: no MLflow run tagged git.commit={commit[:12]} data.dvc_md5={tags['data.dvc_md5']}"
            )
    validation = _validation(stages, runs)
    return Lineage(
        model_uri=model_uri,
        name=name,
        version=str(mv.version),
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
        source_run_id=mv.run_id,
        git_commit=commit,
        git_dirty=tags["git.dirty"],
        data_md5=tags["data.dvc_md5"],
        params_sha256=tags["params.sha256"],
        source=source,
        data_dvc_md5=data_dvc_md5,
        stages=stages,
        params=params,
        params_source=params_source,
        runs=runs,
        validation=validation,
        warnings=tuple(warnings),
        lineage_commit=lineage_commit,
    )


def tag_lineage_commit(name: str, version: str, commit: str, client: MlflowClient | None = None) -> None:
    """Tag version `version` of `name` with the commit that holds its ``dvc.lock`` and ``data.dvc``."""
    from mlflow import MlflowClient

    (client or MlflowClient()).set_model_version_tag(name, version, LINEAGE_COMMIT_TAG, commit)


def _get_run(client: MlflowClient, run_id: str) -> Run | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _files_at(repo: Path, commit: str, names: tuple[str, ...], warnings: list[str]) -> tuple[dict, str]:
    """The text of each file at `commit` (None when absent), or of the working tree when the commit is unknown."""
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}") is not None:
        return {n: _git(repo, "show", f"{commit}:{n}") for n in names}, f"git commit {commit[:12]}"
    warnings.append(f"commit {commit} is not in the repository at {repo.resolve()}; read the working tree instead")
    return {n: (repo / n).read_text() if (repo / n).is_file() else None for n in names}, "working tree"


def _parse_lock(text: str | None) -> tuple[StageLock, ...]:
    lock = yaml.safe_load(text or "") or {}
    stages = []
    for name, stage in (lock.get("stages") or {}).items():
        params: dict[str, Any] = {}
        for values in (stage.get("params") or {}).values():
            params.update(values or {})
        stages.append(
            StageLock(
                name=name,
                cmd=str(stage.get("cmd", "")),
                deps={d["path"]: str(d.get("md5") or d.get("hash") or "") for d in stage.get("deps") or []},
                outs={o["path"]: str(o.get("md5") or o.get("hash") or "") for o in stage.get("outs") or []},
                params=params,
            )
        )
    return tuple(stages)


def _dvc_md5(text: str | None) -> str | None:
    outs = (yaml.safe_load(text or "") or {}).get("outs") or []
    return str(outs[0]["md5"]) if outs and outs[0].get("md5") else None


def _params(
    text: str | None, source: str, sha256: str, run: Run | None, warnings: list[str]
) -> tuple[dict[str, Any], str]:
    if text is not None:
        digest = hashlib.sha256(text.encode()).hexdigest()
        if sha256 not in ("unknown", digest):
            warnings.append(f"params.yaml in {source} hashes to {digest[:12]}, the model was tagged {sha256[:12]}")
        return dict(yaml.safe_load(text) or {}), f"params.yaml in {source}"
    if run is not None:
        warnings.append(f"no params.yaml in {source}: showing the parameters logged on run {run.info.run_id}")
        return dict(run.data.params), f"MLflow run {run.info.run_id}"
    warnings.append(f"no params.yaml in {source} and no source run: parameters unknown")
    return {}, "unknown"


def _stage_runs(
    client: MlflowClient, commit: str, data_md5: str, named: dict[str, str], warnings: list[str]
) -> tuple[StageRun, ...]:
    """Each stage's run: the one the version names (``run.<stage>`` tag), else the latest top-level run tagged
    with `commit` and `data_md5`."""
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    found: dict[str, Run] = {}
    for stage, run_id in named.items():
        run = _get_run(client, run_id)
        if run is None:
            warnings.append(f"stage {stage}: the version names run {run_id}, which is not in the tracking store")
        else:
            found[stage] = run
    query = f"tags.`git.commit` = '{commit}' AND tags.`data.dvc_md5` = '{data_md5}'"
    order = ["attributes.start_time DESC"]
    searched = client.search_runs(list(experiments), filter_string=query, order_by=order) if experiments else []
    for run in searched:
        tagged = run.data.tags.get("stage")
        if tagged and "mlflow.parentRunId" not in run.data.tags and tagged not in found:
            found[tagged] = run
    return tuple(_stage_run(client, stage, run, experiments) for stage, run in found.items())


def _stage_run(client: MlflowClient, stage: str, run: Run, experiments: dict[str, str]) -> StageRun:
    return StageRun(
        stage=stage,
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment=experiments.get(run.info.experiment_id, run.info.experiment_id),
        status=run.info.status,
        start_time=datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds"),
        artifacts=tuple(f"runs:/{run.info.run_id}/{a.path}" for a in client.list_artifacts(run.info.run_id)),
    )


def _validation(stages: tuple[StageLock, ...], runs: tuple[StageRun, ...]) -> ValidationRef | None:
    lock = next((s for s in stages if s.name == VALIDATE_STAGE), None)
    run = next((r for r in runs if r.stage == VALIDATE_STAGE), None)
    if lock is None and run is None:
        return None
    return ValidationRef(
        outputs=dict(lock.outs) if lock else {},
        run_id=run.run_id if run else None,
        status=run.status if run else None,
        artifacts=run.artifacts if run else (),
    )
