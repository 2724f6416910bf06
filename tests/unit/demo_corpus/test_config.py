from __future__ import annotations

import pytest

from demo_corpus import DemoCorpusConfig


def test_from_dict_round_trips_and_rejects_unknown_keys() -> None:
    cfg = DemoCorpusConfig(seed=3, n_train_studies=5)
    assert DemoCorpusConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        DemoCorpusConfig.from_dict({"seed": 1, "n_studies": 4})


@pytest.mark.parametrize(
    "bad",
    [
        {"train_class_shares": [0.5, 0.5]},
        {"train_class_shares": [0.5, 0.5, 0.5, 0.0, 0.0]},
        {"bad_file_share": 1.5},
        {"template_resolution_mm": 3},
        {"n_train_studies": -1},
    ],
)
def test_invalid_values_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        DemoCorpusConfig.from_dict(bad)


def test_config_is_frozen() -> None:
    cfg = DemoCorpusConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 2  # type: ignore[misc]
