"""IngestConfig: strict construction from the params.yaml block."""

from __future__ import annotations

import pytest

from hlip.config import to_dict
from hlip.data.config import IngestConfig


def test_from_dict_builds_nested_configs_and_tuples() -> None:
    cfg = IngestConfig.from_dict(
        {
            "workers": 1,
            "series": {"min_slices": 5},
            "preprocess": {"size": [8, 16, 16], "ct_windows": {"brain": [40, 80]}},
        }
    )
    assert cfg.series.min_slices == 5
    assert cfg.preprocess.size == (8, 16, 16)
    assert cfg.preprocess.ct_windows == {"brain": (40.0, 80.0)}


@pytest.mark.parametrize("data", [{"wokers": 2}, {"preprocess": {"sise": [1, 2, 3]}}, {"deid": {"secret": "x"}}])
def test_unknown_keys_are_rejected_at_every_level(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        IngestConfig.from_dict(data)


def test_invalid_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="size_mode"):
        IngestConfig.from_dict({"preprocess": {"size_mode": "stretch"}})
    with pytest.raises(ValueError, match="3 values"):
        IngestConfig.from_dict({"preprocess": {"size": [1, 2]}})


def test_fingerprint_ignores_workers_but_not_outputs() -> None:
    base = IngestConfig()
    assert IngestConfig.from_dict({"workers": 7}).fingerprint() == base.fingerprint()
    assert IngestConfig.from_dict({"preprocess": {"size": [8, 8, 8]}}).fingerprint() != base.fingerprint()
    assert IngestConfig.from_dict(to_dict(base)) == base


def test_fingerprint_changes_with_the_ingest_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from hlip.data import config as config_module

    before = IngestConfig().fingerprint()
    monkeypatch.setattr(config_module, "closure_digest", lambda entry: "another-version-of-the-code")
    assert IngestConfig().fingerprint() != before


def test_ingest_code_is_the_closure_of_the_ingest_library_not_of_training() -> None:
    from pathlib import Path

    from hlip.data.config import INGEST_ENTRY
    from hlip.lineage.closure import import_closure

    files = set(import_closure(INGEST_ENTRY).files)
    assert {Path("hlip/data/ingest.py"), Path("hlip/data/preprocess.py"), Path("hlip/config.py")} <= files
    assert Path("hlip/data/dataset.py") not in files  # a training-side change never re-ingests the corpus
