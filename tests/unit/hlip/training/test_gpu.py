"""Pre-training on CUDA (skipped without a GPU): bf16 autocast, worker loading into pinned memory, resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from hlip.models.export import load_model
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain


class StopAfterFirstEpochError(Exception):
    pass


def _stop(epoch: int, value: float) -> None:
    raise StopAfterFirstEpochError(epoch)


@pytest.mark.gpu
def test_pretrain_on_cuda_trains_in_bf16_and_exports_a_cpu_loadable_model(block: dict[str, Any]) -> None:
    config = PretrainConfig.from_params({**block, "workers": 2, "precision": "auto"})
    result = run_pretrain(config, progress=False, device="cuda")
    for stage in ("warmup", "contrastive"):
        losses = result.summary["stages"][stage]["epoch_losses"]
        assert losses, stage
        assert all(math.isfinite(v) for v in losses), (stage, losses)
    assert result.model_dir is not None
    model = load_model(result.model_dir).eval()  # exported on CUDA, loaded on the CPU
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    x = torch.rand(2, 2, 1, *model.visual.cfg.image_size)
    with torch.no_grad():
        cpu = model.encode_image(x)
        gpu = model.cuda().encode_image(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-2, atol=1e-2)  # fp32 on both; tf32 matmuls at most


@pytest.mark.gpu
def test_pretrain_on_cuda_resumes_from_the_interrupted_epoch(block: dict[str, Any], tmp_path: Path) -> None:
    config = PretrainConfig.from_params({**block, "out": str(tmp_path / "run")})
    with pytest.raises(StopAfterFirstEpochError):
        run_pretrain(config, report=_stop, progress=False, device="cuda")
    resumed = run_pretrain(config, progress=False, device="cuda")
    contrastive = resumed.summary["stages"]["contrastive"]
    assert contrastive["steps"] == 6  # 3 steps per epoch, counted from the checkpoint
    assert len(contrastive["epoch_losses"]) == 1  # epoch 2 only
    assert math.isfinite(contrastive["epoch_losses"][0])
