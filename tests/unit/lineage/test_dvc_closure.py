"""`dvc.yaml` lists, for every stage, exactly the code it runs: the import closure of its entry module plus the
package data that closure reads. A missing file would let `dvc repro` skip a stage whose code changed; an extra
one re-runs a stage for code it never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hlip.lineage.closure import covered, dep_paths, entry_module, import_closure

REPO = Path(__file__).resolve().parents[3]
STAGES: dict[str, dict[str, object]] = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _deps(stage: str) -> list[str]:
    return [str(d) for d in STAGES[stage].get("deps", [])]  # type: ignore[attr-defined]


def _suggestion(stage: str) -> str:
    closure = import_closure(entry_module(str(STAGES[stage]["cmd"])), REPO)
    return "the stage's code deps should read (python -m hlip.lineage):\n" + "\n".join(
        f"      - {p.as_posix()}" for p in dep_paths(closure, REPO)
    )


def _first_party(dep: str) -> bool:
    return (REPO / Path(dep).parts[0] / "__init__.py").is_file()


def test_every_stage_runs_a_module() -> None:
    assert STAGES, "dvc.yaml has no stages"
    for stage, spec in STAGES.items():
        assert (REPO / entry_module(str(spec["cmd"])).replace(".", "/")).with_suffix(".py").is_file(), stage


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_every_file_of_its_closure(stage: str) -> None:
    closure = import_closure(entry_module(str(STAGES[stage]["cmd"])), REPO)
    missing = [f for f in closure.files if not covered(f, _deps(stage))]
    assert not missing, (
        f"dvc.yaml stage {stage!r} misses {len(missing)} file(s) it runs or reads:\n"
        + "\n".join(f"  {f.as_posix()}  (via {closure.chain(f)})" for f in missing)
        + "\n"
        + _suggestion(stage)
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_no_code_it_does_not_run(stage: str) -> None:
    closure = set(import_closure(entry_module(str(STAGES[stage]["cmd"])), REPO).files)
    extra = []
    for dep in filter(_first_party, _deps(stage)):
        path = REPO / dep
        assert path.exists(), f"dvc.yaml stage {stage!r} lists {dep}, which does not exist"
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        outside = [f.relative_to(REPO) for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc"]
        extra += [f"  {dep}: {f.as_posix()}" for f in outside if f not in closure]
    assert not extra, (
        f"dvc.yaml stage {stage!r} lists code the stage never runs (a change there would re-run it for nothing):\n"
        + "\n".join(extra)
        + "\n"
        + _suggestion(stage)
    )
