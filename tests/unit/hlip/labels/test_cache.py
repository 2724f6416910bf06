from __future__ import annotations

from pathlib import Path

from hlip.labels.cache import LabelCache, cache_key


def test_key_changes_with_prompt_model_and_text() -> None:
    base = cache_key("p1", "m", "No infarct.")
    assert base == cache_key("p1", "m", "No infarct.")
    assert len({base, cache_key("p2", "m", "No infarct."), cache_key("p1", "m2", "No infarct."),
                cache_key("p1", "m", "Acute infarct.")}) == 4  # fmt: skip


def test_round_trip_without_report_text(tmp_path: Path) -> None:
    cache = LabelCache(tmp_path / "c")
    key = cache_key("p", "m", "Acute infarct in the left MCA territory.")
    assert cache.get(key) is None
    assert len(cache) == 0
    cache.put(key, {"labels": {"stroke": [1, "Acute infarct."]}})
    assert cache.get(key) == {"labels": {"stroke": [1, "Acute infarct."]}}
    assert len(cache) == 1
    (tmp_path / "c" / key[:2] / f"{key}.json").write_text("{broken")
    assert cache.get(key) is None
