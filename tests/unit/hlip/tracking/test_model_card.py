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


def test_card_states_the_modalities_and_kinds_present_in_training_not_the_configured_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hlip.data import manifest
    from hlip.tracking.model_card import training_composition, training_part

    part = tmp_path / "ingest" / "train"
    part.mkdir(parents=True)
    scans = [{"study_key": f"s{i // 3}", "scan_key": f"k{i}", "modality": "MR", "kind": k}
             for i, k in enumerate(["t1", "t2", "flair", "t1", "dwi", "flair"])]  # fmt: skip
    manifest.write_table(part, "scans", scans)
    manifest.write_table(part, "studies", [{"study_key": "s0"}, {"study_key": "s1"}])
    meta = {"pretrain": {"data": {"ingest_dir": str(tmp_path / "ingest"), "part": "train"}}}
    assert training_part(meta) == part
    assert training_part({}) is None
    pack = {"pretrain": {"data": {**meta["pretrain"]["data"], "shards": str(tmp_path / "pack")}}}
    assert training_part(pack) == tmp_path / "pack"  # trained from a local pack: its copies of the manifests
    on_s3 = {"pretrain": {"data": {**meta["pretrain"]["data"], "shards": "s3://b/pack"}}}
    assert training_part(on_s3) == part  # never downloaded for a card: the part folder if it is here
    composition = training_composition(part)
    assert composition == {"studies": 2, "scans": 6, "modalities": {"MR": 6},
                           "scan_kinds": {"t1": 2, "flair": 2, "t2": 1, "dwi": 1}}  # fmt: skip
    card = _card(trained_on=composition, evaluation={"benchmark": "demo", "studies": 140, "protocol": "validation"})
    assert "| modality | MR |" in card  # ingest is configured for MR and CT; only MR was trained on
    assert "CT" not in card.split("## Input")[0]
    assert "| modalities (scans) | MR 6 |" in card
    assert "| scan kinds (scans) | t1 2, flair 2, t2 1, dwi 1 |" in card
    assert "| studies / scans | 2 / 6 |" in card
    assert "## Evaluation" in card
    assert "| benchmark | demo |" in card
    assert "| studies | 140 |" in card


def test_card_says_when_the_training_composition_is_unknown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hlip.tracking.model_card import training_composition

    assert training_composition(tmp_path / "missing") == {}
    card = _card()
    assert "not recorded (ingest accepts MR, CT)" in card
    assert "No evaluation recorded." in card


def test_evaluation_summary_says_which_benchmark_how_many_studies_and_where_thresholds_came_from() -> None:
    from hlip.tracking.model_card import evaluation_summary

    metrics = {"n_studies": 200.0, "n_validation": 60.0, "n_test": 140.0, "peers_protocol": 0.0, **METRICS}
    summary = evaluation_summary(metrics, "demo-0123abcd")
    assert summary == {"benchmark fingerprint": "demo-0123abcd", "studies": 200, "validation studies": 60,
                       "test studies": 140, "thresholds": "chosen on a validation split"}  # fmt: skip
    assert evaluation_summary({"peers_protocol": 1.0})["thresholds"].startswith("tuned on the test set")
    assert evaluation_summary(METRICS) == {}
    card = _card(evaluation=summary)
    assert "| benchmark fingerprint | demo-0123abcd |" in card
    assert "| test studies | 140 |" in card
