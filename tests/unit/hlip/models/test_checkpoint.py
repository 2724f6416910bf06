"""Importing upstream HLIP checkpoints (open_clip + timm key layout) reproduces their tensors exactly."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hlip.models import HLIP, create_model, import_upstream_checkpoint, load_state_dict_file, save_safetensors

LINEAR = {"vision": {"stem_channels": []}}  # upstream uses the linear Conv3d patch embedding


def build_model(tiny_text: dict) -> HLIP:
    return create_model("hlip-tiny", overrides={**tiny_text, **LINEAR})


def upstream_state_dict(model: HLIP) -> dict[str, torch.Tensor]:
    """Random tensors under the key names of an upstream HLIP open_clip checkpoint.

    Names as in Zch0414/hlip src/hlip/visual_encoder.py (timm VisionTransformer subclass with
    `spatial_posemb` / `sequential_posemb`, `PatchEmbed3D.proj`) wrapped by open_clip's TimmModel
    (`visual.trunk`, `visual.head.proj`) and HFTextEncoder (`text.transformer`, `text.proj`).
    """
    gen = torch.Generator().manual_seed(0)
    v = model.cfg.vision
    C, P, d, h, w = v.width, v.reg_tokens, *v.grid_size
    shapes: dict[str, tuple[int, ...]] = {
        "visual.trunk.cls_token": (1, 1, C),
        "visual.trunk.reg_token": (1, P, C),
        "visual.trunk.spatial_posemb": (1, d, h, w, C),
        "visual.trunk.sequential_posemb": (1, v.max_scans, C),
        "visual.trunk.patch_embed.proj.weight": (C, 1, *v.patch_size),
        "visual.trunk.patch_embed.proj.bias": (C,),
        "visual.trunk.norm.weight": (C,),
        "visual.trunk.norm.bias": (C,),
        "visual.head.proj.weight": (model.cfg.embed_dim, 2 * C),  # DINO.txt pooling: [CLS-mean, patch-mean]
        "text.proj.weight": (model.cfg.embed_dim, model.text.transformer.config.hidden_size),
        "logit_scale": (),
    }
    hidden = int(C * v.mlp_ratio)
    for i in range(v.depth):
        block = {
            "norm1.weight": (C,),
            "norm1.bias": (C,),
            "attn.qkv.weight": (3 * C, C),
            "attn.qkv.bias": (3 * C,),
            "attn.proj.weight": (C, C),
            "attn.proj.bias": (C,),
            "norm2.weight": (C,),
            "norm2.bias": (C,),
            "mlp.fc1.weight": (hidden, C),
            "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (C, hidden),
            "mlp.fc2.bias": (C,),
        }
        shapes.update({f"visual.trunk.blocks.{i}.{k}": s for k, s in block.items()})
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    for k, t in model.text.transformer.state_dict().items():
        state[f"text.transformer.{k}"] = torch.randn(t.shape, generator=gen)
    state["text.transformer.embeddings.position_ids"] = torch.arange(64)[None]  # older transformers buffer
    return state


def our_key(upstream: str) -> str:
    """Expected destination of each upstream key, spelled out."""
    fixed = {
        "visual.trunk.spatial_posemb": "visual.pos_embed.spatial",
        "visual.trunk.sequential_posemb": "visual.pos_embed.scan",
        "visual.head.proj.weight": "visual.head.weight",
    }
    return fixed.get(upstream, upstream.replace("visual.trunk.", "visual."))


def assert_reproduced(model: HLIP, upstream: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    for key, tensor in upstream.items():
        if key.endswith("position_ids"):
            continue
        assert torch.equal(own[our_key(key)], tensor), key


def test_open_clip_training_dict_with_module_prefix(tiny_text: dict, tmp_path: Path) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    path = tmp_path / "epoch_20.pt"
    torch.save({"epoch": 20, "name": "run", "state_dict": {f"module.{k}": v for k, v in upstream.items()}}, path)
    report = import_upstream_checkpoint(model, path)
    assert report.complete, report.summary()
    assert report.ignored == ["text.transformer.embeddings.position_ids"]
    assert len(report.loaded) == len(upstream) - 1
    assert_reproduced(model, upstream)


def test_safetensors_export_and_round_trip(tiny_text: dict, tmp_path: Path) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    save_file(upstream, str(tmp_path / "open_clip_model.safetensors"))
    assert import_upstream_checkpoint(model, tmp_path / "open_clip_model.safetensors").complete
    assert_reproduced(model, upstream)
    # Our own export loads back through the same path (keys already in our layout).
    ours = save_safetensors(model, tmp_path / "ours.safetensors")
    fresh = build_model(tiny_text)
    assert import_upstream_checkpoint(fresh, ours).complete
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_missing_and_unexpected_keys_are_reported(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    del upstream["visual.trunk.blocks.1.mlp.fc2.bias"]
    upstream["visual.trunk.blocks.0.ls1.gamma"] = torch.ones(24)
    report = import_upstream_checkpoint(model, upstream)
    assert report.missing == ["visual.blocks.1.mlp.fc2.bias"]
    assert report.unexpected == ["visual.trunk.blocks.0.ls1.gamma -> visual.blocks.0.ls1.gamma"]
    assert "missing (1): visual.blocks.1.mlp.fc2.bias" in report.summary()
    with pytest.raises(ValueError, match="does not match"):
        import_upstream_checkpoint(model, upstream, strict=True)


def test_shape_mismatch_names_the_tensor(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    upstream["visual.trunk.blocks.2.attn.qkv.weight"] = torch.zeros(72, 12)
    before = model.state_dict()["visual.blocks.0.norm1.weight"].clone()
    with pytest.raises(ValueError, match=r"visual\.trunk\.blocks\.2\.attn\.qkv\.weight.*\(72, 12\).*\(72, 24\)"):
        import_upstream_checkpoint(model, upstream)
    assert torch.equal(model.state_dict()["visual.blocks.0.norm1.weight"], before)  # nothing half-loaded


def test_vision_only_import_and_2d_inflation(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    weight_2d = torch.randn(24, 3, 16, 16)
    upstream["visual.trunk.patch_embed.proj.weight"] = weight_2d
    report = import_upstream_checkpoint(model, upstream, prefixes=("visual.",))
    assert report.complete
    assert report.inflated == ["visual.trunk.patch_embed.proj.weight"]
    assert all(k.startswith(("text.", "logit_scale")) for k in report.ignored if "position_ids" not in k)
    inflated = model.visual.patch_embed.proj.weight
    assert inflated.shape == (24, 1, 8, 16, 16)
    torch.testing.assert_close(inflated.sum(dim=2), weight_2d.sum(dim=1, keepdim=True))  # same response to a constant


@dataclass
class Payload:
    """Not a tensor: weights_only loading must refuse to unpickle it."""

    command: str = "echo pwned"


def test_untrusted_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict_file(path)
