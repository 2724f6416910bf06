"""DDP on CPU (gloo, torchrun): two processes at half the batch see the same losses as one process, whether the
two read the part's `.npy` files or its study shards (`pretrain.data.shards`), and with fixed report texts, whose
frozen trunk features each rank computes once (`hlip.training.text_features`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local_stack.process import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source", ["npy", "shards", "npy-fixed-text"])
def test_two_processes_match_one_process_at_the_same_global_batch(
    source: str, corpus: Path, pack: Path, tmp_path: Path, harness: Any
) -> None:
    # No per-batch randomness in the model: patch dropout off, and no scan-index embedding (its rows are drawn at
    # random per batch in training, so a rank's draw differs from the single process's).
    common = {"warmup": {"enabled": False}, "contrastive": {"epochs": 1, "lr": 2e-3, "warmup_steps": 1},
              "patch_dropout": 0.0, "checkpoint_every": 0}  # fmt: skip
    single = harness.tiny_block(corpus, tmp_path / "single", batch_size=8, **common)
    double = (harness.tiny_block(corpus, tmp_path / "double", batch_size=4, **common) if source != "shards"
              else harness.shard_block(corpus, tmp_path / "double", str(pack), batch_size=4, **common))  # fmt: skip
    for block in (single, double):
        block["model_overrides"]["vision"] = {"max_scans": 0}
        if source == "npy-fixed-text":
            block["data"]["text"] = {"shuffle_sentences": False}
    runs = {"single": harness.start_training(single, tmp_path / "run1"),
            "double": harness.start_training(double, tmp_path / "run2", torchrun=2, port=free_port())}  # fmt: skip
    for name, proc in runs.items():
        output = proc.communicate(timeout=400)[0].decode()
        assert proc.returncode == 0, f"{name}: {output[-3000:]}"
        tables = output.count("computed once")  # the table's log line: once per rank
        assert tables == ({"single": 1, "double": 2}[name] if source == "npy-fixed-text" else 0), output[-3000:]
    losses = {}
    for name in runs:
        records = harness.read_metrics(tmp_path / ("run1" if name == "single" else "run2"))
        losses[name] = [r["contrastive/loss"] for r in records if "contrastive/loss" in r]
    assert len(losses["single"]) == len(losses["double"]) == 3  # 24 studies with reports / 8 per global batch
    assert losses["single"][0] == pytest.approx(losses["double"][0], abs=1e-5)
    # later steps match too: the DDP gradient equals the single-process gradient of the global batch
    assert losses["single"] == pytest.approx(losses["double"], abs=1e-4)
    assert len(set(losses["single"])) == 3  # the loss moved: a real comparison, not of constants
