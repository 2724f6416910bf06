"""MLflow runs for pipeline stages: one experiment per stage, lineage tags on every run.

Embedded default: a SQLite store and a local artifact folder under the output tree (no server). Setting
``MLFLOW_TRACKING_URI`` (e.g. a standing ``mlflow server`` on PostgreSQL with S3 artifacts) switches every stage
to it with no code or parameter change.

Every run carries the same lineage tags, so a registered model leads back to the exact code, data and
parameters it came from: ``git.commit``, ``git.dirty``, ``data.dvc_md5``, ``params.sha256``, ``stage``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mlflow.entities import Run

log = logging.getLogger(__name__)

DEFAULT_TRACKING_DIR = Path("outputs/mlflow")


def tracking_uri(root: Path = DEFAULT_TRACKING_DIR) -> str:
    """The tracking URI in force: ``MLFLOW_TRACKING_URI`` if set, else SQLite under `root`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or _embedded_uri(root)


def _embedded_uri(root: Path) -> str:
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def lineage_tags(repo: Path = Path(".")) -> dict[str, str]:
    """Tags tying a run to its code, data and parameters (values are "unknown" where unavailable)."""
    tags = {"git.commit": _git(repo, "rev-parse", "HEAD") or "unknown"}
    tags["git.dirty"] = "unknown" if tags["git.commit"] == "unknown" else str(bool(_git(repo, "status", "--porcelain")))
    tags["data.dvc_md5"] = dvc_out_md5(repo / "data.dvc") or "unknown"
    params = repo / "params.yaml"
    tags["params.sha256"] = hashlib.sha256(params.read_bytes()).hexdigest() if params.is_file() else "unknown"
    return tags


def dvc_out_md5(dvc_file: Path) -> str | None:
    """The md5 that a ``.dvc`` file records for its (first) output, or None."""
    if not dvc_file.is_file():
        return None
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or []
    return str(outs[0].get("md5")) if outs and outs[0].get("md5") else None


@contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any] | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    root: Path = DEFAULT_TRACKING_DIR,
) -> Iterator[Run]:
    """Open an MLflow run in the experiment named after `stage`; on an exception the run ends FAILED.

    Args:
        stage: The stage name; it is also the experiment name.
        params: Flat or nested parameters to log (nested keys are joined with dots).
        run_name: Optional run name.
        tags: Extra tags; lineage tags are always added.
        root: Folder of the embedded store when ``MLFLOW_TRACKING_URI`` is unset.
    """
    import mlflow

    uri = tracking_uri(root)
    if uri == _embedded_uri(root):
        root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    # Embedded default: keep artifacts beside the SQLite store, not in the working directory.
    artifacts = (root / "artifacts").resolve().as_uri() if uri == _embedded_uri(root) else None
    _ensure_experiment(stage, artifacts)
    all_tags = {**lineage_tags(), "stage": stage, **(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
        if params:
            flat = flatten(params)
            # MLflow caps a batch at 100 params; log in chunks.
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        try:
            yield run
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings to ``a.b.c`` keys with string values (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _ensure_experiment(name: str, artifacts: str | None) -> None:
    import mlflow

    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifacts)
    mlflow.set_experiment(name)


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()
