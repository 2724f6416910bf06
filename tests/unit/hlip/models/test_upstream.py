"""Importing upstream HLIP weights: every format reproduces their tensors exactly; anything less fails loudly."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hlip.models import HLIP, WeightMismatchError, create_model, import_upstream_weights, load_state_dict_file
from hlip.models.upstream import normalise_layout
from testkit.upstream_checkpoint import LINEAR, upstream_state_dict


def build_model(tiny_text: dict, name: str = "hlip-tiny", **vision: object) -> HLIP:
    overrides = {**tiny_text, "vision": {**LINEAR["vision"], **vision}}
    return create_model(name, overrides=overrides)


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
        if key.endswith("position_ids") or ".pooler." in key:
            continue
        assert torch.equal(own[our_key(key)], tensor), key


def test_open_clip_training_dict_with_module_prefix(tiny_text: dict, tmp_path: Path) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    path = tmp_path / "epoch_20.pt"
    torch.save({"epoch": 20, "name": "run", "state_dict": {f"module.{k}": v for k, v in upstream.items()}}, path)
    report = import_upstream_weights(model, path)
    assert report.complete, report.summary()
    assert report.source_format == "open_clip"
    assert sorted(report.ignored) == sorted(k for k in upstream if "pooler" in k or "position_ids" in k)
    assert len(report.loaded) == len(upstream) - 3
    assert_reproduced(model, upstream)


def test_plain_state_dict_and_safetensors_and_our_own_layout(tiny_text: dict, tmp_path: Path) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    torch.save(upstream, tmp_path / "plain.pt")
    assert import_upstream_weights(model, tmp_path / "plain.pt").complete
    assert_reproduced(model, upstream)
    other = upstream_state_dict(model, seed=1)
    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "open_clip_model.safetensors"))
    assert import_upstream_weights(model, tmp_path / "open_clip_model.safetensors").complete
    assert_reproduced(model, other)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "ours.safetensors"))
    fresh = build_model(tiny_text)
    report = import_upstream_weights(fresh, tmp_path / "ours.safetensors")
    assert report.complete
    assert report.source_format == "hlip"
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_chest_ct_has_no_scan_index_table_and_imports_exactly(tiny_text: dict) -> None:
    model = build_model(tiny_text, "hlip-vit-b-chestct-slice-scan", width=24, heads=2, image_size=[16, 48, 48])
    assert "visual.pos_embed.scan" not in model.state_dict()  # upstream: max_num_scans <= 1 builds none
    upstream = upstream_state_dict(model)
    assert "visual.trunk.sequential_posemb" not in upstream
    report = import_upstream_weights(model, upstream)
    assert report.complete, report.summary()
    assert_reproduced(model, upstream)


def test_vit_l_with_register_and_logit_bias_imports_exactly(tiny_text: dict) -> None:
    # ViT-L's 24-block level pattern and its open_clip logit_bias, at a reduced width
    model = build_model(tiny_text, "hlip-vit-l-brainmri-scan-study-dinotxt", width=32, heads=2, image_size=[12, 32, 32])
    upstream = upstream_state_dict(model)
    assert {"visual.trunk.reg_token", "logit_bias"} <= set(upstream)
    assert import_upstream_weights(model, upstream).complete
    assert_reproduced(model, upstream)


def test_bare_timm_trunk_maps_to_the_trunk_and_strict_clip_import_names_what_it_lacks(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    trunk = {k.removeprefix("visual.trunk."): v for k, v in upstream.items() if k.startswith("visual.trunk.")}
    assert normalise_layout(trunk)[1] == "timm_trunk"
    with pytest.raises(WeightMismatchError, match=r"missing \(\d+\): .*visual\.head\.weight"):
        import_upstream_weights(model, trunk)
    report = import_upstream_weights(model, trunk, scope="trunk")
    assert report.complete
    assert len(report.loaded) == len(trunk)
    assert_reproduced(model, {k: v for k, v in upstream.items() if k.startswith("visual.trunk.")})


def test_missing_key_fails_and_partial_import_lists_it(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    del upstream["visual.trunk.blocks.1.mlp.fc2.bias"]
    before = model.state_dict()["visual.blocks.0.norm1.weight"].clone()
    with pytest.raises(WeightMismatchError, match=r"missing \(1\): visual\.blocks\.1\.mlp\.fc2\.bias"):
        import_upstream_weights(model, upstream)
    assert torch.equal(model.state_dict()["visual.blocks.0.norm1.weight"], before)  # nothing half-loaded
    report = import_upstream_weights(model, upstream, allow_partial=True)
    assert report.missing == ["visual.blocks.1.mlp.fc2.bias"]
    assert torch.equal(
        model.state_dict()["visual.blocks.0.norm1.weight"], upstream["visual.trunk.blocks.0.norm1.weight"]
    )


def test_unexpected_key_fails(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    upstream["visual.trunk.blocks.0.ls1.gamma"] = torch.ones(24)
    with pytest.raises(WeightMismatchError, match=r"unexpected \(1\): visual\.trunk\.blocks\.0\.ls1\.gamma"):
        import_upstream_weights(model, upstream)


def test_shape_mismatch_names_the_tensor_and_loads_nothing(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    upstream = upstream_state_dict(model)
    upstream["visual.trunk.blocks.2.attn.qkv.weight"] = torch.zeros(72, 12)
    before = model.state_dict()["visual.blocks.0.norm1.weight"].clone()
    with pytest.raises(
        WeightMismatchError, match=r"visual\.trunk\.blocks\.2\.attn\.qkv\.weight.*\(72, 12\) vs model \(72, 24\)"
    ):
        import_upstream_weights(model, upstream)
    assert torch.equal(model.state_dict()["visual.blocks.0.norm1.weight"], before)


def test_a_file_that_fills_nothing_fails_even_when_partial_is_allowed(tiny_text: dict) -> None:
    model = build_model(tiny_text)
    with pytest.raises(WeightMismatchError, match="fill none"):
        import_upstream_weights(model, {"encoder.layer.0.weight": torch.zeros(3)}, allow_partial=True)


@dataclass
class Payload:
    """Not a tensor: weights_only loading must refuse to unpickle it."""

    command: str = "echo pwned"


def test_untrusted_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict_file(path)
