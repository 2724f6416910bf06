"""The incremental check of ingest: which studies a rerun skips, decided from an index built once per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hlip.data.ingest import _index_previous, _unchanged
from hlip.data.source import open_source
from hlip.data.study import StudyTask


def _linear_unchanged(previous: dict[str, list[dict[str, Any]]], task: StudyTask, out: Path) -> bool:
    """The check as it was before the index: a scan of both tables per study (the reference for the decisions)."""
    old = next((s for s in previous["studies"] if s["study_key"] == task.study_key), None)
    if old is None or old["fingerprint"] != task.fingerprint:
        return False
    paths = [s["path"] for s in previous["scans"] if s["study_key"] == task.study_key]
    return all((out / p).exists() for p in paths)


@pytest.fixture
def case(tmp_path: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, StudyTask], Path]:
    """Previous tables of five studies and this run's tasks: each study in a different incremental situation."""
    out = tmp_path / "out"
    studies = [
        {"study_key": "same", "fingerprint": "f1"},  # same fingerprint, volumes present -> skip
        {"study_key": "edited", "fingerprint": "f2"},  # fingerprint changed -> redo
        {"study_key": "lost", "fingerprint": "f3"},  # one volume deleted -> redo
        {"study_key": "empty", "fingerprint": "f4"},  # no scans (all quarantined) -> skip
        {"study_key": "gone", "fingerprint": "f5"},  # no longer in the source: no task
        {"study_key": "same", "fingerprint": "stale"},  # a duplicate row: the first one decides
    ]
    scans = [
        {"study_key": k, "path": f"volumes/{k}/{i}.npy"} for k in ("same", "edited", "lost", "gone") for i in range(3)
    ]
    for scan in scans:
        if scan["path"] != "volumes/lost/1.npy":
            (out / scan["path"]).parent.mkdir(parents=True, exist_ok=True)
            (out / scan["path"]).write_bytes(b"")
    previous = {"studies": studies, "scans": scans}
    src = open_source(tmp_path)
    fingerprints = {"same": "f1", "edited": "f2-new", "lost": "f3", "empty": "f4", "new": "f6"}
    tasks = {k: StudyTask(src, k, (), (), str(out), fp) for k, fp in fingerprints.items()}
    return previous, tasks, out


def test_the_indexed_check_makes_the_linear_checks_decisions(
    case: tuple[dict[str, list[dict[str, Any]]], dict[str, StudyTask], Path],
) -> None:
    previous, tasks, out = case
    index = _index_previous(previous)
    decisions = {k: _unchanged(index, t, out) for k, t in tasks.items()}
    assert decisions == {k: _linear_unchanged(previous, t, out) for k, t in tasks.items()}
    assert {k for k, skip in decisions.items() if skip} == {"same", "empty"}


def test_the_index_holds_every_previous_study_with_its_volumes(
    case: tuple[dict[str, list[dict[str, Any]]], dict[str, StudyTask], Path],
) -> None:
    previous, _, _ = case
    index = _index_previous(previous)
    assert set(index) == {"same", "edited", "lost", "empty", "gone"}
    assert index["same"] == ("f1", [f"volumes/same/{i}.npy" for i in range(3)])
    assert index["empty"] == ("f4", [])


def test_an_empty_previous_run_skips_nothing(
    case: tuple[dict[str, list[dict[str, Any]]], dict[str, StudyTask], Path],
) -> None:
    _, tasks, out = case
    index = _index_previous({"studies": [], "scans": []})
    assert not any(_unchanged(index, t, out) for t in tasks.values())
