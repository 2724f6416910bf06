"""The model card: input spec, intended use, data version, metrics with confidence intervals, lineage."""

from __future__ import annotations

from hlip.data.config import IngestConfig
from hlip.data.sampling import ScanPolicy
from hlip.models import get_model_config
from hlip.tracking.model_card import CardFacts, metric_rows, render_model_card

METRICS = {
    "zero_shot.macro_auc": 0.8123,
    "zero_shot.macro_auc_ci_low": 0.7701,
    "zero_shot.macro_auc_ci_high": 0.8544,
    "zero_shot.balanced_accuracy": 0.61,
}


def _card(**overrides: object) -> str:
    ingest = IngestConfig.from_dict({"preprocess": {"size": [48, 224, 224], "spacing": [4.0, 1.0, 1.0]}})
    facts = {
        "name": "hlip-demo",
        "version": "7",
        "model": get_model_config("hlip-demo"),
        "findings": ["stroke", "glioma"],
        "ingest": ingest,
        "scan_policy": ScanPolicy("max_n", 6),
        "metrics": METRICS,
        "lineage": {"git.commit": "0123abc", "data.dvc_md5": "61b445e5.dir", "params.sha256": "f" * 64},
        "run_ids": {"pretrain": "p" * 32, "evaluate": "e" * 32},
        "labeller": "rules (medspacy ConText)",
        **overrides,
    }
    return render_model_card(CardFacts(**facts))  # type: ignore[arg-type]


def test_metric_rows_fold_confidence_intervals_into_their_metric() -> None:
    assert metric_rows(METRICS) == [
        ("zero_shot.balanced_accuracy", 0.61, None, None),
        ("zero_shot.macro_auc", 0.8123, 0.7701, 0.8544),
    ]


def test_card_states_input_spec_use_limits_data_metrics_and_lineage() -> None:
    card = _card()
    assert card.startswith("# hlip-demo v7\n")
    assert "| zero_shot.macro_auc | 0.8123 | [0.7701, 0.8544] |" in card
    assert "| zero_shot.balanced_accuracy | 0.6100 | - |" in card
    assert "| data version (data.dvc md5) | 61b445e5.dir |" in card
    assert "| labeller | rules (medspacy ConText) |" in card
    assert "| voxel grid (D x H x W) | 48 x 224 x 224 (crop_pad) |" in card
    assert "| voxel spacing (mm) | 4 x 1 x 1 |" in card
    assert "max_n, up to 6" in card
    assert "Research only" in card
    assert "not for diagnosis" in card
    assert "synthetic" in card
    assert "`stroke`, `glioma`" in card
    assert f"| MLflow run (pretrain) | {'p' * 32} |" in card
    assert "| git.commit | 0123abc |" in card


def test_card_hides_local_text_folders_and_says_when_no_metrics() -> None:
    cfg = get_model_config("hlip-tiny", {"text": {"model_dir": "/home/someone/models/biomedbert"}})
    card = _card(model=cfg, metrics={})
    assert "/home/someone" not in card
    assert "`biomedbert`" in card
    assert "No metrics recorded." in card
