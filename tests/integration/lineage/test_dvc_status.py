"""Editing one file a stage runs makes `dvc status` name that stage, and re-running stale stages reaches every stage
downstream of it; a fresh clone runs every stage: checked with the real DVC on a scratch copy of the repository
(placeholder data and outputs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hlip.lineage.closure import entry_module, import_closure
from testkit.dvc_repo import (
    cached_outputs,
    commit,
    copy_tree,
    fill_placeholders,
    outputs,
    rewrite_outputs,
    stages,
    stale_stages,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with placeholder data and outputs, every stage committed: `dvc status` starts clean."""
    repo = copy_tree(tmp_path_factory.mktemp("repo"))
    fill_placeholders(repo)
    commit(repo)
    return repo


def _overlaps(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def downstream(spec: dict[str, dict[str, Any]], start: set[str]) -> set[str]:
    """`start` and every stage that depends, transitively, on one of their outputs (from `dvc.yaml`)."""
    found, todo = set(start), list(start)
    while todo:
        upstream = todo.pop()
        for name, other in spec.items():
            deps = [str(d) for d in other.get("deps", [])]
            if name not in found and any(_overlaps(d, o) for d in deps for o in outputs(spec[upstream])):
                found.add(name)
                todo.append(name)
    return found


def owners(repo: Path, file: str) -> set[str]:
    """The stages whose import closure holds `file` (computed from the code, not from `dvc.yaml`)."""
    return {
        name
        for name, spec in stages(repo).items()
        if Path(file) in import_closure(entry_module(str(spec["cmd"])), repo).files
    }


@pytest.mark.parametrize("file", ["hlip/data/ingest.py", "hlip/evaluation/prompts/brain_mri_demo.yaml"])
def test_an_edit_reaches_its_stages_and_everything_downstream(scratch: Path, file: str) -> None:
    assert stale_stages(scratch) == set(), "the committed scratch copy should start clean"
    expected_first = owners(scratch, file)
    assert expected_first, f"no stage runs {file}; pick a file some stage runs"
    path = scratch / file
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        first = stale_stages(scratch)
        assert first == expected_first, (
            f"dvc status after editing {file}: {sorted(first)}, closure says {sorted(expected_first)}"
        )
        ran: set[str] = set()
        stale = first
        while stale:  # stand in for `dvc repro`: stale stages run in pipeline order and their outputs change
            spec = stages(scratch)
            ready = {s for s in stale if not any(s in downstream(spec, {t}) - {t} for t in stale)}
            for name in ready:
                rewrite_outputs(scratch, spec[name], tag=str(len(ran)))
            commit(scratch, *sorted(ready))
            ran |= ready
            stale = stale_stages(scratch)
            assert not stale & ran, f"stages stale again after their re-run: {sorted(stale & ran)}"
        assert ran == downstream(stages(scratch), expected_first)
    finally:
        path.write_bytes(original)
        commit(scratch)


def test_a_fresh_clone_runs_every_stage(scratch: Path, tmp_path: Path) -> None:
    """A fresh clone holds what git holds (metrics files with `cache: false` too) and an empty DVC cache. When its
    upstream stages have reproduced their outputs byte for byte, a stage runs only if one of its own outputs is
    missing, so each stage needs an output DVC caches: `register`, whose only output was its git-tracked metric,
    was skipped in fresh clones, which then had no registered model."""
    assert stale_stages(scratch) == set(), "the committed scratch copy should start clean"
    spec = stages(scratch)
    for name in spec:
        moved = cached_outputs(spec[name])
        for rel in moved:  # this stage's outputs as a fresh clone has them: absent (kept aside, put back below)
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(scratch / rel, tmp_path / rel)
        try:
            assert name in stale_stages(scratch), f"a fresh clone would skip stage {name} (cached outputs: {moved})"
        finally:
            for rel in moved:
                shutil.move(tmp_path / rel, scratch / rel)
        assert stale_stages(scratch) == set()
