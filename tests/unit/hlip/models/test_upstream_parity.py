"""Every upstream architecture against a restatement of upstream HLIP's forward, written here from its math.

The restatement works on the raw weights only (no module of ours): upstream's input normalisation, the Conv3d
patch projection, its sin-cos tables, the timm block (pre-norm attention + GELU MLP), the regrouping of
`visual_encoder.py` (prefix tokens averaged when groups merge, copied when they split) and the DINO.txt head
(one row per prefix token joined to the mean patch token). Weights are perturbed at random so nothing passes
because a tensor is zero or one. `benchmarks/bench_upstream_parity.py` runs upstream's own code instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from hlip.models import create_model, get_model_config
from hlip.models.clip import HLIP

SMALL = {  # reduced widths and scan sizes (2x2x2 token grids); depth, levels, heads, registers, head as upstream
    "hlip-vit-b-brainmri-scan-study": {"width": 24, "heads": 12, "image_size": [16, 32, 32]},
    "hlip-vit-b-brainmri-slice-scan-study": {"width": 24, "heads": 12, "image_size": [16, 32, 32]},
    "hlip-vit-b16-brainmri-scan-study": {"width": 24, "heads": 12, "image_size": [32, 32, 32]},
    "hlip-vit-b-chestct-slice-scan": {"width": 24, "heads": 12, "image_size": [16, 48, 48]},
    "hlip-vit-b-brainmri-scan-study-dinotxt": {"width": 24, "heads": 12, "image_size": [12, 32, 32]},
    "hlip-vit-b-brainmri-slice-scan-study-dinotxt": {"width": 24, "heads": 12, "image_size": [12, 32, 32]},
    "hlip-vit-b-chestct-slice-scan-dinotxt": {"width": 24, "heads": 12, "image_size": [16, 48, 48]},
    "hlip-vit-l-brainmri-scan-study-dinotxt": {"width": 48, "heads": 16, "image_size": [12, 32, 32]},
    "hlip-vit-l-brainmri-slice-scan-study-dinotxt": {"width": 48, "heads": 16, "image_size": [12, 32, 32]},
}
MEAN, STD = float(np.mean([0.485, 0.456, 0.406])), float(np.mean([0.229, 0.224, 0.225]))


def sincos(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def spatial_table(grid: tuple[int, int, int], dim: int) -> Tensor:
    """Upstream's 3D table: a third of the channels each for w, h, d (in that order), `[1, d, h, w, C]`."""
    g = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in grid), indexing="ij")
    emb = np.concatenate([sincos(dim // 3, g[2]), sincos(dim // 3, g[1]), sincos(dim // 3, g[0])], axis=1)
    return torch.tensor(emb, dtype=torch.float32).reshape(1, *grid, dim)


def block(z: Tensor, sd: dict[str, Tensor], i: int, heads: int) -> Tensor:
    """timm Block: x + attn(norm1(x)), then x + mlp(norm2(x)) (LayerNorm eps 1e-6, exact GELU)."""
    p = f"visual.blocks.{i}."
    G, L, C = z.shape
    y = F.layer_norm(z, (C,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
    q, k, v = F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(G, L, 3, heads, -1).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [G, heads, L, hd]
    att = (q @ k.transpose(-2, -1) / math.sqrt(C // heads)).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(G, L, C)
    z = z + F.linear(y, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    y = F.layer_norm(z, (C,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
    y = F.linear(F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])), sd[p + "mlp.fc2.weight"])
    return z + y + sd[p + "mlp.fc2.bias"]


def upstream_rows(model: HLIP, x: Tensor) -> Tensor:
    """Upstream's projected output rows `[B, R, E]` for `x: [B, N, 1, D, H, W]` (every study N scans, eval)."""
    cfg, sd = model.cfg.vision, model.state_dict()
    B, N = x.shape[:2]
    P, C = cfg.num_prefix_tokens, cfg.width
    x = (x - MEAN) / STD  # upstream's loaders normalise [0, 1] scans
    t = F.conv3d(
        x.flatten(0, 1), sd["visual.patch_embed.proj.weight"], sd["visual.patch_embed.proj.bias"], stride=cfg.patch_size
    )
    d, h, w = t.shape[2:]
    t = t.permute(0, 2, 3, 4, 1).reshape(B, N, d, h, w, C)
    pos = sd["visual.pos_embed.spatial"][:, None]  # [1, 1, d, h, w, C]
    if cfg.max_scans > 1:
        pos = pos + sd["visual.pos_embed.scan"][:, :N, None, None, None]  # rows 0..N-1 in evaluation
    t = (t + pos).reshape(B * N * d, h * w, C)
    factor = {"slice": 1, "scan": d, "study": N * d}  # slabs per attention group

    def merge(z: Tensor, k: int) -> Tensor:
        prefix = z[:, :P].reshape(-1, k, P, C).mean(dim=1)
        return torch.cat([prefix, z[:, P:].reshape(prefix.shape[0], -1, C)], dim=1)

    def split(z: Tensor, k: int) -> Tensor:
        prefix = z[:, :P][:, None].expand(-1, k, P, C)
        return torch.cat([prefix, z[:, P:].reshape(z.shape[0], k, -1, C)], dim=2).reshape(z.shape[0] * k, -1, C)

    level = cfg.levels[0]
    z = t.reshape(-1, factor[level] * h * w, C)
    prefix = (
        sd["visual.cls_token"] if not cfg.reg_tokens else torch.cat([sd["visual.cls_token"], sd["visual.reg_token"]], 1)
    )
    z = torch.cat([prefix.expand(z.shape[0], -1, -1), z], dim=1)
    for i, nxt in enumerate(cfg.levels):
        if factor[nxt] > factor[level]:
            z = merge(z, factor[nxt] // factor[level])
        elif factor[nxt] < factor[level]:
            z = split(z, factor[level] // factor[nxt])
        level = nxt
        z = block(z, sd, i, cfg.heads)
    if level != "study":
        z = merge(z, factor["study"] // factor[level])
    z = F.layer_norm(z, (C,), sd["visual.norm.weight"], sd["visual.norm.bias"], eps=1e-6)  # [B, P + N*d*h*w, C]
    if cfg.pool == "cls":
        rows = z[:, :1]
    else:
        rows = torch.cat([z[:, :P], z[:, P:].mean(dim=1, keepdim=True).expand(-1, P, -1)], dim=-1)
    return F.linear(rows, sd["visual.head.weight"])


def perturbed(name: str, tiny_text: dict) -> HLIP:
    model = create_model(name, overrides={**tiny_text, "vision": SMALL[name]}).eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.visual.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if p.ndim == 1 and p.shape[0] > 1 else 0.0))
    return model


def test_every_upstream_config_is_covered() -> None:
    from hlip.models.upstream_configs import UPSTREAM_MODELS

    assert {m.ours for m in UPSTREAM_MODELS} == set(SMALL)
    assert all(get_model_config(m.ours).vision.input_norm == "imagenet_gray" for m in UPSTREAM_MODELS)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("scans", [1, 2, 4])
def test_rows_and_embedding_match_upstream(name: str, scans: int, tiny_text: dict) -> None:
    model = perturbed(name, tiny_text)
    cfg = model.cfg.vision
    if "chestct" in name and scans > 1:
        pytest.skip("chest CT studies are single scans upstream")
    x = torch.rand(2, scans, 1, *cfg.image_size, generator=torch.Generator().manual_seed(scans))
    with torch.no_grad():
        ours, ref = model.visual.forward_rows(x), upstream_rows(model, x)
        embedding = model.encode_image(x)
    assert ours.shape == (2, cfg.num_prefix_tokens if cfg.pool == "dinotxt" else 1, model.cfg.embed_dim)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(embedding, ref[:, 0], rtol=0, atol=1e-4)  # zero-shot row: upstream's row 0
    if cfg.reg_tokens:
        assert (ref[:, 1] - ref[:, 0]).abs().max() > 1e-3  # the register row is a different embedding


def test_chest_ct_has_only_the_spatial_table(tiny_text: dict) -> None:
    for name in ("hlip-vit-b-chestct-slice-scan", "hlip-vit-b-chestct-slice-scan-dinotxt"):
        model = create_model(name, overrides={**tiny_text, "vision": SMALL[name]})
        assert model.visual.pos_embed.scan is None
        torch.testing.assert_close(model.visual.pos_embed.spatial, spatial_table(model.cfg.vision.grid_size, 24))


def test_pool_row_picks_the_register_row(tiny_text: dict) -> None:
    name = "hlip-vit-b-brainmri-scan-study-dinotxt"
    model = perturbed(name, tiny_text)
    other = create_model(name, overrides={**tiny_text, "vision": {**SMALL[name], "pool_row": 1}}).eval()
    other.load_state_dict(model.state_dict())
    x = torch.rand(2, 2, 1, *model.cfg.vision.image_size)
    with torch.no_grad():
        torch.testing.assert_close(other.encode_image(x), model.visual.forward_rows(x)[:, 1])
    with pytest.raises(ValueError, match="pool_row 2"):
        get_model_config(name, {"vision": {"pool_row": 2}})


def test_one_row_scan_table_is_refused() -> None:
    with pytest.raises(ValueError, match="max_scans"):
        get_model_config("hlip-vit-b-brainmri-scan-study", {"vision": {"max_scans": 1}})


def test_every_upstream_contract_is_a_study_contract() -> None:
    from hlip.data.contract import StudyContract
    from hlip.models.upstream_configs import UPSTREAM_MODELS

    for m in UPSTREAM_MODELS:
        contract = StudyContract.from_dict(m.contract)
        assert contract.preprocess.size == get_model_config(m.ours).vision.image_size, m.name
        assert (contract.scans.max_scans == 1) == ("2744" in m.name), m.name  # chest CT: one scan per study
