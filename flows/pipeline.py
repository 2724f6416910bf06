"""Flow `pipeline`: scheduled and event-driven retraining through DVC, so a Prefect run leaves true lineage.

DVC decides *what* runs, Prefect *when* and with what retries: the flow (1) records the raw data with ``dvc add``
(``data.dvc`` then holds what is there now), (2) walks the stages of ``dvc.yaml`` in pipeline order, each a Prefect
task that asks DVC whether the stage is stale and runs ``dvc repro --single-item <stage>`` only then (the stage's
own command, ``python -m flows.<stage>``, so each stage is still its own flow run with its MLflow run), (3) saves
``dvc.lock``, ``data.dvc`` and the metrics files as a commit on the ``hlip/scheduled`` branch (parent: the code
commit; the checkout is left alone), (4) tags the version the register stage made with that commit
(``lineage.commit``), which `hlip lineage` reads, and (5) pushes the branch and the DVC cache to the configured git
and DVC remotes (after the tag: a failed push fails the flow run but loses neither the commit nor the tag). A run
with nothing new runs no stage and commits nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task

from hlip.lineage import repro

REGISTER_DECISION = "outputs/register/decision.json"


@task(task_run_name="record-data")
def record_data(repo: Path) -> tuple[str | None, str | None]:
    """``dvc add`` of the raw data; its md5 before and after."""
    return repro.record_data(repo)


@task(retries=1, retry_delay_seconds=30, task_run_name="repro-{stage}")
def repro_stage(repo: Path, stage: str) -> bool:
    """Run `stage` through DVC when DVC finds it stale; whether it ran."""
    if not repro.is_stale(repo, stage):
        return False
    repro.reproduce(repo, stage)
    return True


@task(task_run_name="save-result")
def save_result(repo: Path, message: str, branch: str) -> str:
    """Commit the lock, data pointer and metrics on `branch`; the commit's sha."""
    return repro.save_result(repo, message, branch)


@task(retries=2, retry_delay_seconds=60, task_run_name="push-result")
def push_result(repo: Path, commit: str, branch: str) -> list[str]:
    """Push the result branch and the DVC cache where remotes are configured; what was pushed."""
    return repro.push(repo, commit, branch)


@task(task_run_name="tag-version")
def tag_version(repo: Path, commit: str) -> str | None:
    """Tag the version the register stage made in this run with the saved commit; its ``name/version``."""
    from mlflow import MlflowClient

    from hlip.tracking.lineage import tag_lineage_commit
    from hlip.tracking.runs import tracking_uri

    decision = json.loads((repo / REGISTER_DECISION).read_text())
    uri = tracking_uri(repo / "outputs" / "mlflow")  # the stages' store: theirs ran with `repo` as working directory
    tag_lineage_commit(decision["name"], str(decision["version"]), commit, MlflowClient(uri, registry_uri=uri))
    return f"{decision['name']}/{decision['version']}"


@flow(name="pipeline", log_prints=True)
def pipeline_flow(repo: str = ".", branch: str = repro.BRANCH) -> dict[str, Any]:
    """Record the raw data, re-run what DVC finds stale (in pipeline order), save and tag the result."""
    root = Path(repo).resolve()
    before, after = record_data(root)
    ran = [stage for stage in repro.pipeline_order(root) if repro_stage(root, stage)]
    result: dict[str, Any] = {"data_md5": after, "data_changed": before != after, "ran": ran}
    if not ran and before == after:
        print("pipeline: no new data and no stale stage; nothing ran, nothing to save")
        return result
    message = f"Scheduled run: data {after}; stages re-run: {', '.join(ran) or 'none'}"
    result["commit"] = save_result(root, message, branch)
    if "register" in ran:  # tagged before the push: an unreachable remote must not cost the version its lineage
        result["version"] = tag_version(root, result["commit"])
    result["pushed"] = push_result(root, result["commit"], branch)
    print(f"pipeline: ran {', '.join(ran) or 'no stage'}; lineage commit {result['commit'][:12]} on {branch}")
    return result


if __name__ == "__main__":
    pipeline_flow()
