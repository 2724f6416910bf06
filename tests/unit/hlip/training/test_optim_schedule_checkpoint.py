"""Weight-decay groups, the warm-up + cosine schedule and atomic checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from hlip.models import create_classifier
from hlip.training.checkpoint import (
    CheckpointMismatchError,
    Position,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from hlip.training.optim import create_optimizer, param_groups
from hlip.training.schedule import warmup_cosine, warmup_cosine_factor


def test_no_decay_on_norms_biases_tokens() -> None:
    model = create_classifier("hlip-tiny", 3)
    groups = {g["name"]: g for g in param_groups(model, 0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in groups["no_decay"]["params"]}  # type: ignore[attr-defined]
    decay = {names[id(p)] for p in groups["decay"]["params"]}  # type: ignore[attr-defined]
    assert {"visual.cls_token", "visual.norm.weight", "visual.norm.bias", "classifier.bias"} <= no_decay
    assert {"visual.blocks.0.attn.qkv.weight", "visual.head.weight", "classifier.weight"} <= decay
    assert not decay & no_decay
    assert len(decay) + len(no_decay) == sum(p.requires_grad for p in model.parameters())


def test_warmup_then_cosine() -> None:
    assert warmup_cosine_factor(0, 4, 20) == pytest.approx(0.25)
    assert warmup_cosine_factor(3, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine_factor(12, 4, 20) == pytest.approx(0.5)
    assert warmup_cosine_factor(20, 4, 20, min_ratio=0.1) == pytest.approx(0.1)
    layer = nn.Linear(2, 2)
    opt = create_optimizer(layer, lr=1.0, weight_decay=0.0)
    sched = warmup_cosine(opt, 2, 10, lr=1.0)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_checkpoints_are_atomic_kept_and_checked(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, {"config_hash": "abc", "x": torch.tensor(step)}, Position("warmup", 0, step, step), 2)
    (tmp_path / "checkpoints" / ".step-000000004.pt.tmp-1").write_bytes(b"partial")  # a killed write
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000002.pt", "step-000000003.pt"]
    latest = latest_checkpoint(tmp_path)
    assert latest is not None
    state = load_checkpoint(latest, "abc")
    assert int(state["x"]) == 3
    assert state["position"]["step_in_epoch"] == 3
    with pytest.raises(CheckpointMismatchError, match="different training config"):
        load_checkpoint(latest, "def")


def test_rng_state_round_trip() -> None:
    state = rng_state()
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


def test_a_prefix_gets_its_own_learning_rate_on_the_same_schedule() -> None:
    model = nn.ModuleDict({"text": nn.ModuleDict({"transformer": nn.Linear(2, 2), "proj": nn.Linear(2, 2)})})
    plain = param_groups(model, 0.1)
    assert [g["name"] for g in plain] == ["no_decay", "decay"]  # unchanged without prefix_lr
    opt = create_optimizer(model, lr=1.0, weight_decay=0.1, prefix_lr={"text.transformer.": 0.01})
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {g["name"]: g for g in opt.param_groups}
    assert sorted(by_name) == ["decay", "decay:text.transformer.", "no_decay", "no_decay:text.transformer."]
    assert {names[id(p)] for p in by_name["decay:text.transformer."]["params"]} == {"text.transformer.weight"}
    assert {names[id(p)] for p in by_name["no_decay:text.transformer."]["params"]} == {"text.transformer.bias"}
    assert {names[id(p)] for p in by_name["decay"]["params"]} == {"text.proj.weight"}
    assert by_name["decay:text.transformer."]["weight_decay"] == 0.1
    sched = warmup_cosine(opt, 2, 10, lr=1.0, min_lr=0.1)
    for _ in range(10):
        base = by_name["decay"]["lr"]
        assert by_name["decay:text.transformer."]["lr"] == pytest.approx(0.01 * base)  # the same factor each step
        opt.step()
        sched.step()
    assert by_name["decay:text.transformer."]["lr"] == pytest.approx(0.001)  # min_lr scaled alike
