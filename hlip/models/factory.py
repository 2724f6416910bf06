"""Registry of named model configs: one JSON file per architecture, file name = model name.

`list_models()` names the registered configs (the package's `configs/*.json` plus any added with
`add_model_config`), `get_model_config(name)` parses one, `create_model(name)` builds the CLIP model,
`create_classifier(name, num_classes)` the supervised warm-up model with the same vision tower.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hlip.models.clip import HLIP, HLIPClassifier
from hlip.models.config import ModelConfig, merge_overrides
from hlip.models.text import Tokenizer

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
_MODEL_CONFIGS: dict[str, dict[str, Any]] = {}


def _load_dir(path: Path) -> None:
    for file in sorted(path.glob("*.json")):
        _MODEL_CONFIGS[file.stem] = json.loads(file.read_text())


def add_model_config(path: str | Path) -> None:
    """Register a JSON config file, or every `*.json` of a directory (a name registered twice is replaced)."""
    path = Path(path)
    if path.is_dir():
        _load_dir(path)
    else:
        _MODEL_CONFIGS[path.stem] = json.loads(path.read_text())


def _registry() -> dict[str, dict[str, Any]]:
    if not _MODEL_CONFIGS:
        _load_dir(CONFIG_DIR)
    return _MODEL_CONFIGS


def list_models() -> list[str]:
    """Names of the registered model configs, sorted."""
    return sorted(_registry())


def get_model_config(name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """Parsed config of model `name`, with `overrides` deep-merged into its JSON first.

    Raises:
        KeyError: No config of that name.
        ValueError: The config (or an override) has an unknown key or an invalid value.
    """
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(registry))}")
    return ModelConfig.from_dict(merge_overrides(registry[name], overrides or {}))


def create_model(
    name: str | ModelConfig, overrides: Mapping[str, Any] | None = None, pretrained_text: bool = True
) -> HLIP:
    """Build the CLIP model of config `name` (or of a `ModelConfig`).

    Args:
        name: Registered model name or a config.
        overrides: Nested mapping deep-merged into the JSON, e.g. `{"text": {"model_dir": "/models/biomedbert"}}`.
        pretrained_text: Load the text tower's weights from its directory (False: same architecture, random).
    """
    cfg = name if isinstance(name, ModelConfig) else get_model_config(name, overrides)
    log.info("building HLIP model %s", name if isinstance(name, str) else "from config")
    return HLIP(cfg, pretrained_text=pretrained_text)


def create_classifier(
    name: str | ModelConfig,
    num_classes: int,
    overrides: Mapping[str, Any] | None = None,
    stem_head: bool = False,
    stem_head_kind: str = "linear",
) -> HLIPClassifier:
    """Build the supervised warm-up model (vision tower + linear multi-label head, optionally the stem head of form
    `stem_head_kind`) of config `name`."""
    cfg = name if isinstance(name, ModelConfig) else get_model_config(name, overrides)
    return HLIPClassifier(cfg, num_classes, stem_head=stem_head, stem_head_kind=stem_head_kind)


def create_tokenizer(name: str | ModelConfig, overrides: Mapping[str, Any] | None = None) -> Tokenizer:
    """Tokenizer of the text tower of config `name`."""
    cfg = name if isinstance(name, ModelConfig) else get_model_config(name, overrides)
    return Tokenizer.from_config(cfg.text)
