"""Exact resumption: a run killed with SIGKILL (twice: in stage A and in stage B) and resumed ends with the
same weights, bit for bit, as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hlip.models.weights import load_state_dict_file
from hlip.training.checkpoint import latest_checkpoint
from testkit.files import sha_tree

pytestmark = pytest.mark.integration


@pytest.mark.slow  # four training subprocesses: about 2 minutes on 2 busy cores
def test_killed_and_resumed_run_matches_uninterrupted_run(corpus: Path, tmp_path: Path, harness: Any) -> None:
    reference = tmp_path / "reference"
    harness.run_to_end(harness.tiny_block(corpus, reference), tmp_path / "run_ref")

    out = tmp_path / "interrupted"
    block = harness.tiny_block(corpus, out)
    killed_in_a = harness.kill_after_step(block, tmp_path / "run1", step=4)  # stage A has 12 steps
    assert killed_in_a < 12
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    killed_in_b = harness.kill_after_step(block, tmp_path / "run2", step=16)  # stage B: steps 13-24
    first_resumed = min(r["step"] for r in harness.read_metrics(tmp_path / "run2"))
    assert first_resumed == int(ckpt.stem.split("-")[1]) + 1  # resumed after the checkpoint, not from scratch
    assert 12 < killed_in_b < 24
    harness.run_to_end(block, tmp_path / "run3")
    assert min(r["step"] for r in harness.read_metrics(tmp_path / "run3")) > 13

    expected = load_state_dict_file(reference / "model" / "model.safetensors")
    actual = load_state_dict_file(out / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"weights differ after resume: {different[:5]}"
    trained = [k for k in expected if k.startswith("visual.blocks")]
    initial = load_state_dict_file(reference / "warmup" / "classifier.safetensors")
    assert any(not torch.equal(expected[k], initial[k]) for k in trained)  # stage B changed the vision tower


def test_a_finished_run_or_another_config_starts_afresh(corpus: Path, tmp_path: Path, harness: Any) -> None:
    """DVC re-runs the stage after a params or code change: it must retrain, not resume or fail on old checkpoints."""
    out = tmp_path / "out"
    harness.run_to_end(harness.tiny_block(corpus, out, contrastive={"epochs": 0}), tmp_path / "run1")
    changed = harness.tiny_block(corpus, out, contrastive={"epochs": 0}, batch_size=3)
    proc = harness.start_training(changed, tmp_path / "run2")
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    assert "starting afresh" in output
    assert "finished run" in output


def test_two_runs_write_byte_identical_outputs(corpus: Path, tmp_path: Path, harness: Any) -> None:
    """Everything the stage leaves under its output folder (model and its metadata, warm-up head, checkpoints,
    `summary.json`) is a function of the inputs: DVC hashes it, and a fresh clone must reproduce the committed lock.
    Wall-clock facts (epoch seconds, studies/s) belong to MLflow and the run record, not to these files."""
    block = harness.tiny_block(corpus, Path("out"))  # relative: both runs record the same config
    for run in ("first", "second"):
        harness.run_to_end(block, tmp_path / run)
    first, second = sha_tree(tmp_path / "first" / "out"), sha_tree(tmp_path / "second" / "out")
    assert {"model/config.json", "model/model.safetensors", "summary.json"} <= set(first)
    assert any(name.startswith("checkpoints/step-") for name in first)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
