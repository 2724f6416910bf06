"""A trained model as a self-contained folder: `model.safetensors` + `config.json` (+ free-form metadata).

The folder is what every later stage consumes (evaluation, registration, serving), so it holds everything needed to
rebuild the model offline: the resolved architecture (including the text tower's source) and the weights. Loading
never downloads anything: the text tower's weights come from the safetensors file, not from its directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hlip.models.clip import HLIP
from hlip.models.config import ModelConfig
from hlip.models.weights import load_state_dict_file, save_safetensors

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


def save_model(model: HLIP, out: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `model` to folder `out` (created) and return it.

    Args:
        model: The trained CLIP model.
        out: Destination folder.
        metadata: JSON-serialisable facts stored next to the config (e.g. the findings of a warm-up head,
            the preprocessing spec, the training run id).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, out / WEIGHTS, metadata={"format": "hlip", "format_version": str(FORMAT_VERSION)})
    doc = {"format_version": FORMAT_VERSION, "model": model.cfg.to_dict(), "metadata": dict(metadata or {})}
    (out / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out


def read_export(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The architecture and metadata of an exported model folder, without loading weights."""
    path = Path(path)
    config_file = path / CONFIG
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is not an exported HLIP model: {CONFIG} is missing")
    doc = json.loads(config_file.read_text())
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{config_file}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}")
    return ModelConfig.from_dict(doc["model"]), dict(doc.get("metadata", {}))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> HLIP:
    """Rebuild an exported model in eval mode; every weight must match the architecture exactly.

    Raises:
        FileNotFoundError: The folder lacks its config or weights.
        ValueError: Weights and architecture disagree (missing, unexpected or mis-shaped tensors).
    """
    path = Path(path)
    cfg, _ = read_export(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{path} is not an exported HLIP model: {WEIGHTS} is missing")
    model = HLIP(cfg, pretrained_text=False)
    load_exact(model, load_state_dict_file(weights))
    return model.to(map_location).eval()


def load_exact(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """`load_state_dict(strict=True)` with one readable error listing what differs."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or mis_shaped:
        raise ValueError(
            f"weights do not match the architecture: {len(missing)} missing {missing[:5]}, "
            f"{len(unexpected)} unexpected {unexpected[:5]}, {len(mis_shaped)} mis-shaped {mis_shaped[:5]}"
        )
    model.load_state_dict(dict(state_dict), strict=True)
