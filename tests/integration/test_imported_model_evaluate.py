"""Released weights, end to end: an open_clip folder as upstream publishes it imports whole (vision, text tower,
projections, logit scale) with upstream's study contract, the demo benchmark's DICOM are ingested as that contract
says (`hlip ingest --contract-of`), and `hlip evaluate --benchmark demo` scores zero-shot with it.

The released architecture is a tiny one, registered for the test as an upstream model with its own contract (a
ViT-B at 48 x 224 x 224 embeds about one study a minute on these CPUs); every step is the real command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hlip.cli.main import app
from hlip.models import create_model, factory, get_model_config, upstream_configs
from hlip.models.upstream_configs import UpstreamModel
from testkit.tiny_bert import write_tiny_bert
from testkit.upstream_checkpoint import LINEAR, released_folder, upstream_state_dict

pytestmark = pytest.mark.integration
runner = CliRunner()
RELEASED = "vit_tiny_scan_study_test"  # the upstream name the test registers
# upstream-style preprocessing that differs from the library default (32 x 64 x 64, z-scored in the model)
CONTRACT = {
    "preprocess": {"size": [16, 32, 32], "spacing": None, "size_mode": "resize", "mr_percentiles": [0.5, 99.5]},
    "scans": {"mode": "max_n", "max_scans": 4, "kinds": []},
}


@pytest.fixture
def released_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A released open_clip folder of `hlip-tiny` with upstream's linear patch embedding and upstream key names."""
    tiny = get_model_config("hlip-tiny", LINEAR).to_dict()
    monkeypatch.setitem(factory._registry(), "hlip-tiny-released", tiny)
    entry = UpstreamModel(RELEASED, "hlip-tiny-released", "test", CONTRACT)
    monkeypatch.setattr(upstream_configs, "UPSTREAM_MODELS", (*upstream_configs.UPSTREAM_MODELS, entry))
    bert = write_tiny_bert(tmp_path / "bert")
    reference = create_model("hlip-tiny-released", overrides={"text": {"model_dir": str(bert)}})
    return released_folder(tmp_path, bert, upstream_state_dict(reference, seed=5), RELEASED)


def test_released_clip_is_evaluated_zero_shot_on_the_demo_benchmark(
    released_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from demo_corpus import DemoCorpusConfig, generate_corpus

    monkeypatch.chdir(tmp_path)  # the demo adapter's default labels: data/ground_truth/benchmark_labels.csv
    monkeypatch.setenv("HLIP_DEID_KEY", "imported-model-test-key")
    corpus = DemoCorpusConfig.tiny(seed=4, n_train_studies=0, n_benchmark_studies=10)
    generate_corpus(tmp_path / "data", corpus, workers=1)
    dicom, reports = "data/benchmark/dicom", "data/benchmark/reports.csv"

    imported = runner.invoke(app, ["model", "import", str(released_tiny), "--out", "imported"])
    assert imported.exit_code == 0, imported.output
    assert "format open_clip" in imported.output
    meta = json.loads(Path("imported/config.json").read_text())["metadata"]
    assert meta["contract"] == CONTRACT
    assert meta["source"]["upstream"] == RELEASED

    # the benchmark ingested with the library's preprocessing is refused, naming the difference and the way out
    default = runner.invoke(app, ["ingest", dicom, "--reports", reports, "--out", "default", "--workers", "1"])
    assert default.exit_code == 0, default.output
    args = ["--benchmark", "demo", "--model", "imported", "--n-boot", "20", "--no-linear-probe", "--device", "cpu"]
    refused = runner.invoke(app, ["evaluate", *args, "--data-root", "default", "--out", "eval0"])
    assert refused.exit_code == 1
    assert "preprocess differently" in refused.output
    assert "size: model [16, 32, 32]" in refused.output
    assert "--contract-of imported" in refused.output
    assert not Path("eval0/metrics.json").exists()

    ingested = runner.invoke(
        app, ["ingest", dicom, "--reports", reports, "--out", "part", "--workers", "1", "--contract-of", "imported"]
    )
    assert ingested.exit_code == 0, ingested.output
    scans = pd.read_parquet("part/scans.parquet")
    shapes = {np.load(Path("part") / p, mmap_mode="r").shape for p in scans["path"]}
    assert shapes == {(16, 32, 32)}

    evaluated = runner.invoke(app, ["evaluate", *args, "--data-root", "part", "--out", "eval", "--cache-dir", "cache"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(Path("eval/metrics.json").read_text())
    assert metrics["n_studies"] == 10
    assert 0.0 <= metrics["zero_shot.macro_auc"] <= 1.0
    scores = pd.read_csv("eval/scores.csv").filter(like="zero_shot.")
    assert len(scores) == 10
    assert np.isfinite(scores.to_numpy()).all()
    assert len(scores.round(6).drop_duplicates()) == 10  # each study its own scores: the imported model sees them


def test_a_text_tower_shorter_than_the_context_fails_at_import(released_tiny: Path, tmp_path: Path) -> None:
    """The released config asks for more text positions than its BERT has: an error now, not in the first batch."""
    config = released_tiny / "open_clip_config.json"
    data = json.loads(config.read_text())
    data["model_cfg"]["text_cfg"]["context_length"] = 513  # the tiny BERT has 512 positions
    config.write_text(json.dumps(data))
    result = runner.invoke(app, ["model", "import", str(released_tiny), "--out", str(tmp_path / "imported")])
    assert result.exit_code == 1
    assert "text.context_length 513 exceeds the 512 positions" in result.output
    assert not (tmp_path / "imported").exists()
