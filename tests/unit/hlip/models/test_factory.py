"""The registry of named configs: every registered model builds, trains a step and checkpoints equivalently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hlip.models import create_loss, create_model, factory, get_model_config, list_models

Batch = Callable[..., tuple[torch.Tensor, torch.Tensor]]

REQUIRED = {
    "hlip-vit-b-chestct-slice-scan",
    "hlip-vit-b-brainmri-scan-study",
    "hlip-vit-b16-brainmri-scan-study",
    "hlip-vit-b-brainmri-slice-scan-study",
    "hlip-vit-b-brainmri-full",
    "hlip-demo",
    "hlip-tiny",
    "hlip-vit-b-brainmri-scan-study-dinotxt",
    "hlip-vit-b-brainmri-slice-scan-study-dinotxt",
    "hlip-vit-l-brainmri-scan-study-dinotxt",
    "hlip-vit-l-brainmri-slice-scan-study-dinotxt",
    "hlip-vit-b-chestct-slice-scan-dinotxt",
}


def test_registry_lists_upstream_demo_and_tiny_configs() -> None:
    assert set(list_models()) >= REQUIRED
    chest = get_model_config("hlip-vit-b-chestct-slice-scan").vision
    assert (chest.image_size, chest.patch_size, chest.tokens_per_scan) == ((112, 336, 336), (8, 24, 24), 2744)
    assert chest.levels == ("slice", "slice", "scan") * 4
    brain = get_model_config("hlip-vit-b-brainmri-scan-study").vision
    assert (brain.width, brain.depth, brain.tokens_per_scan) == (768, 12, 1176)
    assert brain.levels == ("scan", "scan", "study") * 4
    assert get_model_config("hlip-vit-b16-brainmri-scan-study").vision.tokens_per_scan == 588
    assert get_model_config("hlip-vit-b-brainmri-slice-scan-study").vision.levels[:3] == ("slice", "scan", "study")
    assert set(get_model_config("hlip-vit-b-brainmri-full").vision.levels) == {"study"}
    demo = get_model_config("hlip-demo").vision
    assert (demo.image_size, demo.tokens_per_scan, demo.width, demo.depth) == ((32, 64, 64), 64, 128, 4)
    assert demo.input_norm == "zscore_foreground"  # docs/demo-model.md, session 6
    assert (demo.stem_channels, demo.stem_pool) == ((16, 32, 64), "stride")


@pytest.mark.parametrize("name", list_models())
def test_every_config_trains_a_step_and_checkpoints_equivalently(
    name: str, tiny_text: dict, study_batch: Batch
) -> None:
    large = get_model_config(name).vision.width > 768  # ViT-L: its 24-block pattern at a reduced width
    model = create_model(name, overrides={**tiny_text, "vision": {"width": 64}} if large else tiny_text).train()
    v = model.cfg.vision
    size = tuple(p * 2 for p in v.patch_size)  # reduced 2x2x2 token grid: positions are resampled
    x, mask = study_batch([1, 2], size)
    text = torch.tensor([[2, 6, 7, 3, 0], [2, 8, 3, 0, 0]])
    results = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(0)
        out = model(x, text, scan_mask=mask)
        loss = create_loss("clip")(**out)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out["image_features"].detach(), loss.detach(), grads))
    (feat0, loss0, grads0), (feat1, loss1, grads1) = results
    assert torch.isfinite(feat0).all()
    assert torch.isfinite(loss0)
    assert all(torch.isfinite(g).all() for g in grads0.values())
    assert "visual.blocks.0.attn.qkv.weight" in grads0
    torch.testing.assert_close(feat1, feat0, rtol=0, atol=1e-5)
    torch.testing.assert_close(loss1, loss0)
    assert grads0.keys() == grads1.keys()
    for key in grads0:
        torch.testing.assert_close(grads1[key], grads0[key], rtol=1e-4, atol=1e-6, msg=key)


def test_unknown_names_and_keys(tiny_text: dict) -> None:
    with pytest.raises(KeyError, match="unknown model 'vit-h'"):
        get_model_config("vit-h")
    with pytest.raises(ValueError, match="unknown key"):
        get_model_config("hlip-tiny", overrides={"vision": {"patch": [1, 1, 1]}})
    cfg = get_model_config("hlip-tiny", overrides={"vision": {"depth": 2, "levels": ["scan", "study"]}, **tiny_text})
    assert cfg.vision.depth == 2
    assert cfg.text.model_dir == tiny_text["text"]["model_dir"]


def test_add_model_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_MODEL_CONFIGS", dict(factory._registry()))
    cfg = get_model_config("hlip-tiny").to_dict()
    cfg["embed_dim"] = 8
    (tmp_path / "my-model.json").write_text(json.dumps(cfg))
    factory.add_model_config(tmp_path)
    assert "my-model" in list_models()
    assert get_model_config("my-model").embed_dim == 8
