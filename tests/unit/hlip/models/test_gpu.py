"""CUDA checks (skipped without a GPU): fused SDPA kernels in bf16 keep packing exact enough."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from hlip.models import VisionTransformer3D, compile_model, get_model_config

Batch = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@pytest.mark.gpu
def test_packed_bf16_batch_matches_each_study_alone_on_cuda(study_batch: Batch) -> None:
    cfg = get_model_config("hlip-vit-b-brainmri-scan-study").vision
    model = VisionTransformer3D(cfg, 512).cuda().eval()
    counts = [3, 1, 2]
    x, mask = study_batch(counts, (16, 64, 64))
    x, mask = x.cuda(), mask.cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        packed = model(x, mask).float()
        for b, n in enumerate(counts):
            alone = model(x[b : b + 1, :n]).float()
            torch.testing.assert_close(packed[b], alone[0], rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
def test_compiled_forward_matches_eager_on_cuda(study_batch: Batch) -> None:
    cfg = get_model_config("hlip-demo").vision
    model = VisionTransformer3D(cfg, 128).cuda().eval()
    x, _ = study_batch([3, 3], cfg.image_size)
    x = x.cuda()
    with torch.no_grad():
        torch.testing.assert_close(compile_model(model)(x), model(x), rtol=1e-3, atol=1e-3)
