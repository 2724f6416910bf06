"""Scheduled runs through DVC: record the raw data, let DVC decide what is stale, keep the result as a commit.

A scheduled or event-driven run (Prefect) must leave the lineage `dvc repro` leaves: the data it trained on in
``data.dvc``, each stage's hashes in ``dvc.lock``. So it (1) records the raw data with ``dvc add`` (``data.dvc``
then holds the new md5, and the stages' MLflow runs are tagged with it), (2) asks DVC, stage by stage in pipeline
order, whether the stage is stale and runs ``dvc repro --single-item`` only then, (3) commits ``dvc.lock``,
``data.dvc`` and the metrics files on a branch (`BRANCH`) without touching the checkout (a temporary index, the
current ``HEAD`` as parent), and (4) pushes the branch and the DVC cache to the configured remotes, if any. The
commit is what `hlip lineage` reads for a version tagged ``lineage.commit``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

BRANCH = "hlip/scheduled"
DATA_TARGET = "data"
LINEAGE_COMMIT_TAG = "lineage.commit"  # on a registered version: the commit holding its dvc.lock and data.dvc
RESULT_PATHS = ("dvc.lock", "data.dvc", "outputs/metrics")


class ReproError(RuntimeError):
    """A DVC or git command of a scheduled run failed; the message holds the command and its output."""


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `args` (``dvc ...`` runs this interpreter's DVC) in `repo`; its stdout, or `ReproError`."""
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise ReproError(f"`{' '.join(args)}` failed in {repo} ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _output(repo: Path, dvc_file: str) -> dict[str, Any]:
    """The first output a ``.dvc`` file records (empty when the file or its outputs are absent)."""
    path = repo / dvc_file
    outs = (yaml.safe_load(path.read_text()) or {}).get("outs") or [] if path.is_file() else []
    return dict(outs[0]) if outs else {}


def data_md5(repo: Path, dvc_file: str = f"{DATA_TARGET}.dvc") -> str | None:
    """The md5 a ``.dvc`` file records for its output (None when absent)."""
    md5 = _output(repo, dvc_file).get("md5")
    return str(md5) if md5 else None


def uncached(repo: Path, dvc_file: str = f"{DATA_TARGET}.dvc") -> bool:
    """Whether a ``.dvc`` file's output is tracked by hash only (``cache: false``: not stored, not pushed)."""
    return _output(repo, dvc_file).get("cache") is False


def record_data(repo: Path, target: str = DATA_TARGET) -> tuple[str | None, str | None]:
    """``dvc add`` the raw data: ``<target>.dvc`` records what is there now. Returns its md5 before and after."""
    before = data_md5(repo, f"{target}.dvc")
    run(repo, "dvc", "add", "--quiet", target)
    after = data_md5(repo, f"{target}.dvc")
    log.info("raw data %s: %s", target, "unchanged" if before == after else f"{before} -> {after}")
    return before, after


def pipeline_order(repo: Path) -> list[str]:
    """The stages of ``dvc.yaml`` in an order where each runs after every stage whose outputs it reads."""
    stages: dict[str, dict[str, Any]] = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]

    def overlaps(a: str, b: str) -> bool:
        pa, pb = Path(a), Path(b)
        return pa == pb or pa in pb.parents or pb in pa.parents

    outs = {name: [_path(o) for key in ("outs", "metrics", "plots") for o in spec.get(key, [])]
            for name, spec in stages.items()}  # fmt: skip
    needs = {name: {u for u in stages if u != name and any(overlaps(str(d), o) for d in spec.get("deps", [])
                                                          for o in outs[u])}
             for name, spec in stages.items()}  # fmt: skip
    order: list[str] = []
    while len(order) < len(stages):
        ready = [s for s in stages if s not in order and needs[s] <= set(order)]
        if not ready:
            raise ReproError(f"dvc.yaml has a cycle among {sorted(set(stages) - set(order))}")
        order.append(ready[0])  # dvc.yaml's order among the ready ones
    return order


def is_stale(repo: Path, stage: str) -> bool:
    """Whether DVC would re-run `stage` now: `dvc status` of that stage alone names it."""
    report = json.loads(run(repo, "dvc", "status", "--json", stage) or "{}")
    return stage in report


def reproduce(repo: Path, stage: str) -> None:
    """``dvc repro --single-item`` of `stage`: DVC runs its command and records it in ``dvc.lock``."""
    run(repo, "dvc", "repro", "--single-item", stage)


def save_result(repo: Path, message: str, branch: str = BRANCH, paths: Sequence[str] = RESULT_PATHS) -> str:
    """Commit `paths` (as they are in the working tree) on `branch`, with ``HEAD`` as parent, leaving the checkout,
    its index and ``HEAD`` alone. Returns the commit's sha."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run(repo, "git", "read-tree", "HEAD", env=env)
        present = [p for p in paths if (repo / p).exists()]
        run(repo, "git", "add", "--force", "--", *present, env=env)
        tree = run(repo, "git", "write-tree", env=env).strip()
    commit = run(repo, "git", "commit-tree", tree, "-p", "HEAD", "-m", message, env=_identity(repo)).strip()
    run(repo, "git", "update-ref", f"refs/heads/{branch}", commit)
    run(repo, "git", "update-ref", f"refs/hlip/lineage/{commit}", commit)  # every scheduled result stays reachable
    return commit


def push(repo: Path, commit: str, branch: str = BRANCH) -> list[str]:
    """Push the result to the configured remotes: the branch and its lineage ref to each git remote, the DVC cache
    to the default DVC remote. Returns what was pushed (empty when no remote is configured)."""
    pushed = []
    for remote in run(repo, "git", "remote").split():
        run(repo, "git", "push", "--quiet", remote, f"refs/heads/{branch}", f"refs/hlip/lineage/{commit}")
        pushed.append(f"git:{remote}")
    if run(repo, "dvc", "remote", "list").strip():
        if uncached(repo):
            t = DATA_TARGET
            log.warning(
                f"{t}.dvc says `cache: false`: DVC records the raw data's hash but `dvc push` does not store the "
                f"data, so another machine cannot `dvc pull` it (the demo corpus regenerates byte for byte; for "
                f"your own export run `dvc remove {t}.dvc && dvc add {t}` once)"
            )
        run(repo, "dvc", "push", "--quiet")
        pushed.append("dvc:default")
    return pushed


def _identity(repo: Path) -> dict[str, str]:
    """The committer: git's configured one, else a fixed name for the scheduled run (a worker often has none)."""
    try:
        run(repo, "git", "config", "user.email")
        return {}
    except ReproError:
        name, email = "hlip scheduled run", "hlip-scheduled@localhost"
        return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email}  # fmt: skip


def _path(item: Any) -> str:
    return str(next(iter(item))) if isinstance(item, dict) else str(item)
