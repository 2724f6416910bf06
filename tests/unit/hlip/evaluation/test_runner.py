"""`run_evaluation` end to end on a synthetic benchmark with a tiny exported model: outputs, cache, protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.embeddings import StudyEmbeddings, cache_path
from hlip.evaluation.fingerprint import benchmark_fingerprint, model_fingerprint
from hlip.evaluation.model_handle import ModelHandle
from hlip.evaluation.prompts import load_prompt_set
from hlip.evaluation.runner import run_evaluation
from hlip.evaluation.text_cache import PromptEncoder
from hlip.evaluation.thresholds import validation_split
from hlip.evaluation.zero_shot import ensemble_embedding, l2_normalize

FAST = {"n_boot": 40, "val_fraction": 0.4, "probe_folds": 2, "device": "cpu", "batch_size": 4}


def _plant(model_dir: Path, bench: Any, cache: Path, image: np.ndarray, logit_scale: float = 10.0) -> None:
    """Write `image` embeddings (and reports = images) into the cache entry the runner will read."""
    ids = np.asarray(bench.study_ids())
    emb = StudyEmbeddings(ids, image.astype(np.float32), image.astype(np.float32), np.ones(len(ids), bool), logit_scale)
    emb.save(cache_path(cache, model_fingerprint(model_dir), benchmark_fingerprint(bench)))


def test_outputs_plots_summary_and_embedding_cache(
    tmp_path: Path, tiny_model_dir: Path, synthetic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hlip.models.export as export

    loads: list[Path] = []
    real_load = export.load_model
    monkeypatch.setattr(export, "load_model", lambda path, **kw: loads.append(path) or real_load(path, **kw))
    bench = synthetic(n=20, task="multiclass")
    config = EvaluateConfig(**FAST)
    result = run_evaluation(tiny_model_dir, bench, config, tmp_path / "out", tmp_path / "cache")

    assert bench.load_calls == 20
    assert not result.embeddings_cached
    assert len(loads) == 1
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["protocol"] == "validation"
    assert doc["benchmark"] == "synthetic"
    for key in (
        "zero_shot.macro_auc",
        "zero_shot.balanced_accuracy",
        "linear_probe.macro_auc",
        "retrieval.report_to_study.recall_at_1",
        "retrieval.study_to_study.ctclip_map_at_1",
    ):
        assert 0.0 <= doc[key] <= 1.0, key
    low, point, high = doc["zero_shot.macro_auc_ci_low"], doc["zero_shot.macro_auc"], doc["zero_shot.macro_auc_ci_high"]
    assert low <= high
    assert low <= point + 0.2
    assert doc["n_test"] == 20 - doc["n_validation"]
    for png in result.plots:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 2000
    assert {p.name for p in result.plots} >= {"zero_shot_roc.png", "zero_shot_confusion.png", "retrieval_recall.png"}
    roc = pd.read_csv(tmp_path / "out" / "roc.csv")
    assert list(roc.columns) == ["method", "label", "fpr", "tpr", "threshold"]
    assert set(roc["label"]) == set(bench.classes)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert result.facts["model_id"] in summary
    assert "protocol: validation" in summary
    assert "<table>" in (tmp_path / "out" / "summary.html").read_text()

    # Same model, same benchmark, other templates: embeddings from the cache, only the new prompts are encoded.
    again = synthetic(n=20, task="multiclass")
    other = EvaluateConfig(**FAST, templates=("Brain MRI shows {}.",))
    result2 = run_evaluation(tiny_model_dir, again, other, tmp_path / "out2", tmp_path / "cache")
    assert result2.embeddings_cached
    assert again.load_calls == 0
    # Same prompts again: nothing to compute, the model is never loaded.
    loads.clear()
    result3 = run_evaluation(tiny_model_dir, synthetic(n=20), other, tmp_path / "out3", tmp_path / "cache")
    assert loads == []
    assert result3.metrics["zero_shot.macro_auc"] == result2.metrics["zero_shot.macro_auc"]


def test_zero_shot_on_planted_embeddings_ranks_as_planted(tmp_path: Path, tiny_model_dir: Path, synthetic: Any) -> None:
    bench = synthetic(n=25, task="multiclass")
    prompts = load_prompt_set("brain_mri_demo")
    encode = PromptEncoder(ModelHandle(tiny_model_dir, "cpu"), None)
    class_text = np.stack([ensemble_embedding(encode, prompts, p) for p in prompts.class_phrasings(bench.classes)])
    off_diagonal = (class_text @ class_text.T)[~np.eye(len(class_text), dtype=bool)]
    assert off_diagonal.max() < 0.999, "the fixture's class texts must differ, else ranks are float noise"
    truth = bench.labels().to_numpy().argmax(1)
    _plant(tiny_model_dir, bench, tmp_path / "cache", class_text[truth])  # each study = its class's text embedding

    config = EvaluateConfig(**FAST, linear_probe=False)
    result = run_evaluation(tiny_model_dir, bench, config, tmp_path / "out", tmp_path / "cache")
    assert bench.load_calls == 0
    assert result.metrics["zero_shot.balanced_accuracy"] == 1.0
    assert result.metrics["zero_shot.macro_auc"] == 1.0

    shuffled = class_text[(truth + 1) % len(class_text)]  # every study planted on the next class
    _plant(tiny_model_dir, bench, tmp_path / "cache", shuffled)
    wrong = run_evaluation(tiny_model_dir, bench, config, tmp_path / "out", tmp_path / "cache")
    assert wrong.metrics["zero_shot.balanced_accuracy"] == 0.0


def test_thresholds_follow_the_protocol(tmp_path: Path, tiny_model_dir: Path, synthetic: Any) -> None:
    bench = synthetic(n=30, task="multilabel", seed=3)
    y = bench.labels().to_numpy()
    rng = np.random.default_rng(0)
    first = l2_normalize(rng.normal(size=(30, 16)))
    _val, test = validation_split(y, 0.4, seed=0)
    second = first.copy()
    second[test] = l2_normalize(rng.normal(size=(len(test), 16)))  # only the test rows change

    def thresholds(image: np.ndarray, protocol: str) -> tuple[np.ndarray, dict[str, Any]]:
        _plant(tiny_model_dir, bench, tmp_path / "cache", image)
        config = EvaluateConfig(**FAST, protocol=protocol, linear_probe=False)
        out = tmp_path / protocol.split()[0]
        run_evaluation(tiny_model_dir, bench, config, out, tmp_path / "cache")
        table = pd.read_csv(out / "per_label.csv")
        return table["threshold"].to_numpy(), json.loads((out / "metrics.json").read_text())

    t1, doc = thresholds(first, "validation")
    t2, _ = thresholds(second, "validation")
    assert np.array_equal(t1, t2), "validation-protocol thresholds must not depend on test rows"
    assert doc["protocol"] == "validation"
    assert doc["n_test"] == len(test)
    p1, peers = thresholds(first, "test_set (peers)")
    p2, _ = thresholds(second, "test_set (peers)")
    assert not np.array_equal(p1, p2)
    assert peers["protocol"] == "test_set (peers)"
    assert peers["peers_protocol"] == 1.0
    assert peers["n_test"] == 30
