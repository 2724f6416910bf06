"""Import upstream HLIP weights (open_clip + timm layout) into `HLIP` models, strictly.

Upstream trains with open_clip: a `CustomTextCLIP` whose vision tower is a timm `VisionTransformer` subclass
wrapped by open_clip's `TimmModel` (`visual.trunk.*`, projection `visual.head.proj`) and whose text tower is
open_clip's `HFTextEncoder` (`text.transformer.*` = the HF BERT, `text.proj`). The frozen sin-cos tables are
parameters of the trunk (`spatial_posemb [1, d, h, w, C]`, `sequential_posemb [1, M, C]`). Formats read:

- an open_clip training dict (`state_dict`, keys prefixed `module.` under DDP) or a plain state dict (torch file);
- safetensors of the same state dict;
- an open_clip model folder as released (`open_clip_config.json` + `open_clip_model.safetensors` or
  `open_clip_pytorch_model.bin`, plus the text tower's tokenizer files);
- a bare timm trunk state dict (`blocks.0...`, `spatial_posemb`): read as `visual.trunk.*`.

The import is strict: every key the chosen scope of the model expects must come from the file with the same
shape, and every tensor of the file must land somewhere (`WeightMismatchError` names the keys otherwise).
`allow_partial=True` loads what matches and lists what was skipped; a file that fills nothing always fails.
Files are read with `safetensors` or `torch.load(weights_only=True)`; nothing is unpickled blindly.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hlip.models.weights import load_state_dict_file, strip_prefix

log = logging.getLogger(__name__)

# (upstream pattern, our replacement); first match wins. Keys already in our layout match no rule.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^visual\.trunk\.spatial_posemb$", "visual.pos_embed.spatial"),
    (r"^visual\.trunk\.sequential_posemb$", "visual.pos_embed.scan"),
    (r"^visual\.trunk\.(cls_token|reg_token)$", r"visual.\1"),
    (r"^visual\.trunk\.patch_embed\.proj\.(weight|bias)$", r"visual.patch_embed.proj.\1"),
    (r"^visual\.trunk\.blocks\.(\d+)\.(.+)$", r"visual.blocks.\1.\2"),
    (r"^visual\.trunk\.norm\.(weight|bias)$", r"visual.norm.\1"),
    (r"^visual\.head\.proj\.(weight|bias)$", r"visual.head.\1"),
)
# Upstream keys that carry nothing this model uses (HF position-id buffers, an unused BERT pooler).
IGNORED_KEYS: tuple[str, ...] = (r"\.position_ids$", r"^text\.transformer\.pooler\.")
# Top-level names of a bare timm trunk state dict (timm `VisionTransformer` + HLIP's tables).
TRUNK_KEYS = re.compile(r"^(cls_token|reg_token|spatial_posemb|sequential_posemb|patch_embed\.|blocks\.|norm\.)")

#: What each scope of a model expects from the file.
SCOPES: dict[str, tuple[str, ...]] = {
    "clip": ("visual.", "text.", "logit_scale", "logit_bias"),
    "vision": ("visual.",),
    "trunk": ("visual.",),  # minus the projection head and the study-embedding norm (`_in_scope`)
}
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pt")


class WeightMismatchError(ValueError):
    """The weight file and the model disagree; the message names every key involved."""


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        source_format: `open_clip`, `plain`, `timm_trunk` or `hlip` (already this package's layout).
        loaded: Model keys filled from the file.
        missing: Model keys of the scope the file did not provide (left as they were).
        unexpected: File keys (after mapping) the model does not have.
        mis_shaped: File keys whose shape differs from the model's (`key: file shape vs model shape`).
        ignored: File keys dropped on purpose (`IGNORED_KEYS`, or outside the scope).
    """

    source_format: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing was missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mis_shaped)

    def summary(self) -> str:
        """Human-readable multi-line report."""
        lines = [f"format {self.source_format}: loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "mis_shaped", "ignored"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name} ({len(keys)}): " + ", ".join(keys))
        return "\n".join(lines)


def map_key(key: str) -> str:
    """Our key for an upstream key (unchanged when no rule matches)."""
    for pattern, replacement in KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return key


def normalise_layout(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """The state dict in open_clip's key layout and the name of the layout it came in.

    A bare timm trunk (no `visual.` / `text.` keys, timm block names) is moved under `visual.trunk.`.
    """
    state = strip_prefix(state, "module.")
    if any(k.startswith(("visual.", "text.", "logit_scale")) for k in state):
        fmt = "hlip" if any(k.startswith("visual.blocks.") for k in state) else "open_clip"
        return dict(state), fmt
    if state and all(TRUNK_KEYS.match(k) for k in state):
        return {f"visual.trunk.{k}": v for k, v in state.items()}, "timm_trunk"
    return dict(state), "plain"


@dataclass(frozen=True)
class OpenClipFolder:
    """A released open_clip model folder.

    Attributes:
        path: The folder.
        weights: Its weight file.
        config: `open_clip_config.json` parsed (empty when the folder has none).
    """

    path: Path
    weights: Path
    config: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> OpenClipFolder:
        """Find the weights and config of a folder.

        Raises:
            FileNotFoundError: The folder holds none of the open_clip weight files.
        """
        path = Path(path)
        weights = next((path / name for name in OPEN_CLIP_WEIGHTS if (path / name).is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"{path}: no open_clip weights ({', '.join(OPEN_CLIP_WEIGHTS)})")
        config_file = path / OPEN_CLIP_CONFIG
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        return cls(path, weights, config)

    @property
    def model_cfg(self) -> dict[str, Any]:
        """open_clip's model config (`model_cfg`, or the whole file for a bare model config)."""
        return dict(self.config.get("model_cfg", self.config))

    @property
    def timm_model_name(self) -> str | None:
        """The upstream vision tower's registered name, if the config names one."""
        name = self.model_cfg.get("vision_cfg", {}).get("timm_model_name")
        return str(name) if name else None

    def text_dir(self) -> Path | None:
        """The folder itself when it carries a transformers config and tokenizer for the text tower."""
        has_config = (self.path / "config.json").is_file()
        has_tokenizer = any((self.path / n).is_file() for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))
        return self.path if has_config and has_tokenizer else None


def read_weights(source: str | Path | Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Tensors of `source` (file, open_clip folder or loaded state dict) in open_clip layout, and their format."""
    if isinstance(source, Mapping):
        return normalise_layout(source)
    path = Path(source)
    if path.is_dir():
        return normalise_layout(load_state_dict_file(OpenClipFolder.read(path).weights))
    return normalise_layout(load_state_dict_file(path))


def _in_scope(key: str, scope: str) -> bool:
    if not key.startswith(SCOPES[scope]):
        return False
    return not (scope == "trunk" and key.startswith(("visual.head.", "visual.embed_norm.")))


def import_upstream_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    scope: str = "clip",
    allow_partial: bool = False,
) -> ImportReport:
    """Load upstream HLIP (or own) weights into `model`; nothing is loaded unless the whole import is accepted.

    Args:
        model: An `HLIP` (or `HLIPClassifier` with `scope="vision"` / `"trunk"`).
        source: Weight file, open_clip model folder, or an already loaded state dict.
        scope: `clip` (vision, text, projections, temperature), `vision` (`visual.*`) or `trunk` (`visual.*`
            without the projection head: a bare timm trunk).
        allow_partial: Load what matches and report the rest instead of raising.

    Returns:
        The report (also logged).

    Raises:
        WeightMismatchError: A key is missing, unexpected or mis-shaped (without `allow_partial`), or nothing at all
            would be loaded.
        KeyError: Unknown scope.
    """
    if scope not in SCOPES:
        raise KeyError(f"unknown import scope {scope!r}; choose one of {sorted(SCOPES)}")
    state, fmt = read_weights(source)
    own = model.state_dict()
    report, mapped = ImportReport(source_format=fmt), {}
    for src_key, tensor in state.items():
        key = map_key(src_key)
        named = src_key if key == src_key else f"{src_key} -> {key}"
        if any(re.search(p, src_key) for p in IGNORED_KEYS):
            report.ignored.append(src_key)
        elif key not in own:
            report.unexpected.append(named)
        elif not _in_scope(key, scope):
            report.ignored.append(src_key)
        elif tensor.shape != own[key].shape:
            report.mis_shaped.append(f"{named}: file {tuple(tensor.shape)} vs model {tuple(own[key].shape)}")
        else:
            mapped[key] = tensor
    report.missing = sorted(k for k in own if _in_scope(k, scope) and k not in mapped)
    report.loaded = sorted(mapped)
    if not mapped:
        raise WeightMismatchError(f"the weights fill none of the model's tensors (scope {scope}):\n" + report.summary())
    if not allow_partial and not report.complete:
        raise WeightMismatchError(
            "the weights do not match the model (pass allow_partial / --allow-partial to load what matches):\n"
            + report.summary()
        )
    model.load_state_dict(mapped, strict=False)
    log.info("weight import: %s", report.summary())
    return report
