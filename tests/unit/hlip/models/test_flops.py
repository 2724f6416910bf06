"""The analytic FLOP count agrees with torch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hlip.models import get_model_config, vision_forward_flops
from hlip.models.visual import VisionTransformer3D

STEMS = [
    {"stem_channels": []},
    {"stem_channels": [4]},
    {"stem_channels": [4, 8], "stem_downsample": True},
    {"stem_channels": [4, 8, 8], "stem_pool": "stride"},
    {"stem_channels": [], "pool": "map", "pool_queries": 3},
]


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("counts", [[2, 2], [3, 1, 2]])
def test_vision_flops_match_flop_counter(stem: dict[str, object], counts: list[int]) -> None:
    cfg = get_model_config("hlip-tiny", overrides={"vision": stem})
    model = VisionTransformer3D(cfg.vision, cfg.embed_dim).eval()
    n = max(counts)
    x = torch.randn(len(counts), n, 1, 16, 64, 32)
    mask = torch.arange(n)[None] < torch.tensor(counts)[:, None]
    # The math backend decomposes attention into counted matmuls (the CPU flash kernel is not counted).
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(x, mask)
    expected = counter.get_total_flops()
    assert expected > 0
    assert vision_forward_flops(cfg.vision, counts, cfg.embed_dim, image_size=(16, 64, 32)) == expected
