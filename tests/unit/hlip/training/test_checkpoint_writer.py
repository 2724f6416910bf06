"""The background checkpoint writer: a snapshot taken at `save()`, written off the training thread, errors raised."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hlip.models import create_classifier
from hlip.training.checkpoint import (
    CheckpointWriter,
    Position,
    host_copy,
    list_checkpoints,
    load_checkpoint,
    rng_state,
)
from hlip.training.optim import create_optimizer


def _training_payload() -> tuple[torch.nn.Module, torch.optim.Optimizer, dict]:
    torch.manual_seed(0)
    model = create_classifier("hlip-tiny", 3)
    optimizer = create_optimizer(model, lr=1e-3, weight_decay=0.1)
    model(torch.rand(2, 1, 1, *model.cfg.vision.image_size))["logits"].sum().backward()
    optimizer.step()  # AdamW now holds exp_avg / exp_avg_sq tensors
    return model, optimizer, {"config_hash": "h"}


def test_the_checkpoint_holds_the_state_at_save_time_not_what_training_did_next(tmp_path: Path) -> None:
    model, optimizer, common = _training_payload()
    random.seed(5)
    expected_weights = {k: v.clone() for k, v in model.state_dict().items()}
    expected_moments = {k: {n: t.clone() for n, t in s.items() if isinstance(t, torch.Tensor)}
                        for k, s in optimizer.state_dict()["state"].items()}  # fmt: skip
    expected_draw = random.random()
    random.seed(5)
    writer = CheckpointWriter(tmp_path, keep_last=2)
    payload = {**common, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state()}
    writer.save(payload, Position("warmup", 1, 0, 7))
    with torch.no_grad():  # training goes on while the write is in flight: in-place updates of the live tensors
        for p in model.parameters():
            p.add_(1.0)
    model(torch.rand(2, 1, 1, *model.cfg.vision.image_size))["logits"].sum().backward()
    optimizer.step()
    random.random()
    writer.wait()

    state = load_checkpoint(list_checkpoints(tmp_path)[-1], "h")
    assert state["position"]["global_step"] == 7
    for k, v in expected_weights.items():
        assert torch.equal(state["model"][k], v), k
    for k, moments in expected_moments.items():
        for n, t in moments.items():
            assert torch.equal(state["optimizer"]["state"][k][n], t), (k, n)
    random.setstate(state["rng"]["python"])
    assert random.random() == expected_draw
    assert isinstance(state["rng"]["numpy"][1], np.ndarray)
    assert writer.times.as_dict()["count"] == 1
    assert len(writer.times.write_s) == 1


def test_one_write_in_flight_and_old_checkpoints_pruned(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, keep_last=2)
    for step in range(1, 5):
        writer.save({"config_hash": "h", "w": torch.full((1000,), float(step))}, Position("warmup", step, 0, step))
    writer.wait()
    kept = list_checkpoints(tmp_path)
    assert [p.name for p in kept] == ["step-000000003.pt", "step-000000004.pt"]
    assert float(load_checkpoint(kept[-1], "h")["w"][0]) == 4.0
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("surfaces_at", ["wait", "next save"])
def test_a_failed_write_is_raised_never_dropped(tmp_path: Path, surfaces_at: str) -> None:
    (tmp_path / "checkpoints").write_text("a file where the checkpoint folder should be")
    writer = CheckpointWriter(tmp_path, keep_last=2)
    writer.save({"config_hash": "h"}, Position("warmup", 1, 0, 1))
    surface = (
        writer.wait if surfaces_at == "wait" else lambda: writer.save({"config_hash": "h"}, Position("warmup", 1, 0, 2))
    )
    with pytest.raises(RuntimeError, match=r"writing a checkpoint under .*checkpoints failed"):
        surface()
    writer.wait()  # reported once: the writer can go on (or be closed) afterwards


def test_host_copy_shares_no_memory_with_the_live_state() -> None:
    live = {"w": torch.ones(3), "groups": [{"lr": 0.1, "t": torch.zeros(2)}], "np": (np.arange(3), "x")}
    snap = host_copy(live)
    live["w"].add_(5)
    live["groups"][0]["t"].add_(5)
    live["groups"][0]["lr"] = 9.0
    live["np"][0][:] = 7
    assert torch.equal(snap["w"], torch.ones(3))
    assert torch.equal(snap["groups"][0]["t"], torch.zeros(2))
    assert snap["groups"][0]["lr"] == 0.1
    assert snap["np"][0].tolist() == [0, 1, 2]
    assert snap["np"][1] == "x"
