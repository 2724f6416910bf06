"""Checkpoints as upstream HLIP (github.com/Zch0414/hlip) writes them, with random tensors, for import tests.

Key names and the released folder layout are facts read from upstream's code and its 2026 model folders; the
tensors are random (seeded), so an import that drops or misplaces one cannot pass by accident.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from hlip.models import HLIP

#: Overrides that give our configs upstream's linear Conv3d patch embedding (no conv stem).
LINEAR: dict[str, dict[str, Any]] = {"vision": {"stem_channels": []}}


def vit_block_shapes(width: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of one timm `VisionTransformer` block (pre-norm attention + MLP), by key within the block."""
    return {
        "norm1.weight": (width,),
        "norm1.bias": (width,),
        "attn.qkv.weight": (3 * width, width),
        "attn.qkv.bias": (3 * width,),
        "attn.proj.weight": (width, width),
        "attn.proj.bias": (width,),
        "norm2.weight": (width,),
        "norm2.bias": (width,),
        "mlp.fc1.weight": (hidden, width),
        "mlp.fc1.bias": (hidden,),
        "mlp.fc2.weight": (width, hidden),
        "mlp.fc2.bias": (width,),
    }


def upstream_state_dict(model: HLIP, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the key names of an upstream HLIP open_clip checkpoint of `model`'s architecture.

    Names as in Zch0414/hlip src/hlip/visual_encoder.py (timm VisionTransformer subclass with `spatial_posemb`,
    `sequential_posemb` only with two or more scan rows, `reg_token` with registers, `PatchEmbed3D.proj`)
    wrapped by open_clip's TimmModel (`visual.trunk`, `visual.head.proj`) and HFTextEncoder (`text.transformer`
    with its unused pooler, `text.proj`); `logit_bias` when the open_clip config sets `init_logit_bias`.
    """
    gen = torch.Generator().manual_seed(seed)
    cfg, v = model.cfg, model.cfg.vision
    C, d, h, w = v.width, *v.grid_size
    shapes: dict[str, tuple[int, ...]] = {
        "visual.trunk.cls_token": (1, 1, C),
        "visual.trunk.spatial_posemb": (1, d, h, w, C),
        "visual.trunk.patch_embed.proj.weight": (C, 1, *v.patch_size),
        "visual.trunk.patch_embed.proj.bias": (C,),
        "visual.trunk.norm.weight": (C,),
        "visual.trunk.norm.bias": (C,),
        "visual.head.proj.weight": (cfg.embed_dim, 2 * C if v.pool == "dinotxt" else C),
        "text.proj.weight": (cfg.embed_dim, model.text.transformer.config.hidden_size),
        "logit_scale": (),
    }
    if v.reg_tokens:
        shapes["visual.trunk.reg_token"] = (1, v.reg_tokens, C)
    if v.max_scans > 1:
        shapes["visual.trunk.sequential_posemb"] = (1, v.max_scans, C)
    if cfg.init_logit_bias is not None:
        shapes["logit_bias"] = ()
    block = vit_block_shapes(C, int(C * v.mlp_ratio))
    for i in range(v.depth):
        shapes.update({f"visual.trunk.blocks.{i}.{k}": s for k, s in block.items()})
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    for k, t in model.text.transformer.state_dict().items():
        state[f"text.transformer.{k}"] = torch.randn(t.shape, generator=gen)
    width = model.text.transformer.config.hidden_size
    state["text.transformer.pooler.dense.weight"] = torch.randn(width, width, generator=gen)  # HF BertModel pooler
    state["text.transformer.pooler.dense.bias"] = torch.randn(width, generator=gen)
    state["text.transformer.embeddings.position_ids"] = torch.arange(64)[None]  # older transformers buffer
    return state


def released_folder(tmp_path: Path, tiny_bert_dir: Path, state: dict[str, torch.Tensor], timm_name: str) -> Path:
    """An open_clip model folder as released: config JSON, weights, and the text tower's config + tokenizer."""
    folder = tmp_path / "released"
    folder.mkdir()
    model_cfg = {"embed_dim": 16, "vision_cfg": {"timm_model_name": timm_name}, "text_cfg": {"context_length": 32}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_bert_dir / name, folder / name)
    return folder
