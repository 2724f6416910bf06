"""Scratch copies of the repository for checks with the real DVC: the working tree's files without data or outputs,
placeholders standing in for them, and the `dvc` CLI run in the copy."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def copy_tree(dest: Path) -> Path:
    """Copy the files git knows or would track (tracked and untracked-not-ignored: other work in progress is
    part of the closures the checks compute) into `dest`, and make it a git repository."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listing):
        source = REPO / rel
        if source.is_file():  # deleted-but-tracked files are skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def dvc(repo: Path, *args: str) -> str:
    """Run the real `dvc` CLI in `repo`; raise with its output when it fails."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stale_stages(repo: Path) -> set[str]:
    """The pipeline stages `dvc status` reports as changed (the raw-data `.dvc` files are left out).

    Runs DVC in this process (its API wants the repository as working directory): a `dvc` subprocess costs a
    second or two of start-up per call, and the checks call it many times.
    """
    from dvc.repo import Repo

    with contextlib.chdir(repo), Repo(str(repo)) as dvc_repo:
        report: dict[str, Any] = dvc_repo.status()
    return {name for name in report if not name.endswith(".dvc")}


def commit(repo: Path, *targets: str) -> None:
    """`dvc commit --force` of `targets` (every stage and `.dvc` file when none): record their current state."""
    from dvc.repo import Repo

    with contextlib.chdir(repo), Repo(str(repo)) as dvc_repo:
        for target in targets or (None,):
            dvc_repo.commit(target, force=True)


def stages(repo: Path) -> dict[str, dict[str, Any]]:
    """`dvc.yaml`'s stages."""
    return dict(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def _output_entries(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each path a stage writes (outs, metrics, plots) with its options, as written in `dvc.yaml`."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for key in ("outs", "metrics", "plots"):
        for item in spec.get(key, []):
            if isinstance(item, dict):
                (path, options), *_ = item.items()
                entries.append((str(path), options or {}))
            else:
                entries.append((str(item), {}))
    return entries


def outputs(spec: dict[str, Any]) -> list[str]:
    """Every path a stage writes (outs, metrics, plots), as written in `dvc.yaml`."""
    return [path for path, _ in _output_entries(spec)]


def cached_outputs(spec: dict[str, Any]) -> list[str]:
    """The outputs of a stage that DVC keeps in its cache (not `cache: false`): what a fresh clone lacks."""
    return [path for path, options in _output_entries(spec) if options.get("cache", True)]


def fill_placeholders(repo: Path) -> None:
    """Create every dependency and output `dvc.yaml` names that the copy lacks (data, outputs) with placeholder
    content: a file for names with a suffix, else a folder holding one file. Deeper paths first, so a stage's
    output folder holds the sub-folders its consumers depend on."""
    paths = {p for spec in stages(repo).values() for p in [*map(str, spec.get("deps", [])), *outputs(spec)]}
    for rel in sorted(paths, key=lambda p: -len(Path(p).parts)):
        path = repo / rel
        if path.exists():
            continue
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"placeholder {rel}\n")
        else:
            path.mkdir(parents=True)
            (path / "placeholder").write_text(f"placeholder {rel}\n")


def rewrite_outputs(repo: Path, spec: dict[str, Any], tag: str) -> None:
    """Stand in for a re-run that changed the stage's results: new content in every file of each output."""
    for rel in outputs(spec):
        path = repo / rel
        for target in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if target.is_file():
                target.write_text(f"rerun {tag} of {target.relative_to(repo)}\n")
