"""2D ViT (ImageNet MAE, timm layout) -> 3D tower: kernels inflated, positions made 3D, blocks copied."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hlip.models.config import VisionConfig
from hlip.models.mae_init import init_from_2d_vit
from hlip.models.pos_embed import sincos_1d
from hlip.models.visual import VisionTransformer3D
from testkit.upstream_checkpoint import vit_block_shapes

C = 24


def tower(**kw: object) -> VisionTransformer3D:
    cfg = {"image_size": (16, 32, 32), "patch_size": (8, 16, 16), "width": C, "depth": 2, "heads": 2}
    cfg.update({"levels": ("scan", "study"), "reg_tokens": 1, "pool": "dinotxt"}, **kw)
    return VisionTransformer3D(VisionConfig(**cfg), embed_dim=8)  # type: ignore[arg-type]


def vit_2d(grid: int = 2, patch: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny timm VisionTransformer state dict: CLS position row, RGB patch kernel, 2 blocks, MAE extras."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {
        "cls_token": (1, 1, C),
        "pos_embed": (1, 1 + grid * grid, C),
        "patch_embed.proj.weight": (C, 3, patch, patch),
        "patch_embed.proj.bias": (C,),
        "norm.weight": (C,),
        "norm.bias": (C,),
        "decoder_embed.weight": (16, C),  # MAE decoder: no place in the tower
    }
    for i in range(2):
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in vit_block_shapes(C, 4 * C).items()})
    return {k: torch.randn(s, generator=gen) for k, s in shapes.items()}


def test_blocks_cls_and_positions_follow_upstreams_conversion(tmp_path: Path) -> None:
    state = vit_2d()
    torch.save({"model": state}, tmp_path / "mae.pth")  # MAE releases wrap the weights in "model"
    visual = tower()
    reg_before = visual.reg_token.detach().clone()  # type: ignore[union-attr]
    report = init_from_2d_vit(visual, tmp_path / "mae.pth")
    own = visual.state_dict()
    assert report.ignored == ["decoder_embed.weight"]
    for key in ("blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias", "norm.weight", "patch_embed.proj.bias"):
        assert torch.equal(own[key], state[key]), key
    torch.testing.assert_close(own["cls_token"], state["cls_token"] + state["pos_embed"][:, :1])
    assert torch.equal(own["reg_token"], reg_before)  # no 2D counterpart: left as initialised
    spatial = own["pos_embed.spatial"]  # [1, d=2, h=2, w=2, C]
    in_plane = state["pos_embed"][0, 1:].reshape(2, 2, C)
    depth = sincos_1d(torch.arange(2), C)
    for k in range(2):
        torch.testing.assert_close(spatial[0, k], in_plane + depth[k])


def test_patch_kernel_is_channel_summed_and_averaged_over_depth() -> None:
    state = vit_2d()
    visual = tower()
    init_from_2d_vit(visual, state)
    kernel = visual.patch_embed.proj.weight  # [C, 1, 8, 16, 16]
    assert kernel.shape == (C, 1, 8, 16, 16)
    summed = state["patch_embed.proj.weight"].sum(dim=1)  # [C, 16, 16]
    torch.testing.assert_close(kernel.sum(dim=2)[:, 0], summed)  # a constant scan: the 2D response to grey
    torch.testing.assert_close(kernel[:, 0, 3], summed / 8)


def test_other_patch_size_and_grid_are_resampled() -> None:
    state = vit_2d(grid=4, patch=16)
    state["patch_embed.proj.weight"] = torch.full((C, 3, 16, 16), 0.5)
    state["pos_embed"][:, 1:] = torch.linspace(-1, 1, C)  # the same row everywhere: resampling keeps it
    visual = tower(image_size=(12, 48, 48), patch_size=(6, 24, 24))  # 2x2 in-plane grid, 24x24 kernels
    init_from_2d_vit(visual, state)
    torch.testing.assert_close(visual.patch_embed.proj.weight, torch.full((C, 1, 6, 24, 24), 1.5 / 6))
    spatial = visual.pos_embed.spatial
    assert spatial.shape == (1, 2, 2, 2, C)
    torch.testing.assert_close(spatial[0, 1, 1, 0], torch.linspace(-1, 1, C) + sincos_1d(torch.arange(2), C)[1])
    x = torch.rand(1, 2, 1, 12, 48, 48)
    assert torch.isfinite(visual.eval()(x)).all()


def test_misfits_are_refused_with_the_key() -> None:
    state = vit_2d()
    del state["blocks.1.norm2.bias"]
    with pytest.raises(ValueError, match=r"missing \['blocks\.1\.norm2\.bias'\]"):
        init_from_2d_vit(tower(), state)
    with pytest.raises(ValueError, match="stem"):
        init_from_2d_vit(tower(stem_channels=(4,)), vit_2d())
    wide = vit_2d()
    wide["norm.weight"] = torch.ones(C + 1)
    with pytest.raises(ValueError, match=r"norm\.weight: file \(25,\)"):
        init_from_2d_vit(tower(), wide)
