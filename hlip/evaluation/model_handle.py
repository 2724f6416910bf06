"""An exported model folder, loaded only when something actually needs the network.

Evaluations whose study embeddings and prompt embeddings are all cached never load the model (no torch
forward, no transformers import), which is what makes re-evaluating a prompt change take seconds.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlip.evaluation.fingerprint import model_fingerprint

if TYPE_CHECKING:
    import torch

    from hlip.models.clip import HLIP
    from hlip.models.text import Tokenizer

log = logging.getLogger(__name__)


class ModelHandle:
    """A model folder (`model.safetensors` + `config.json`) with lazily loaded model and tokenizer.

    Args:
        model_dir: Exported model folder (`hlip.models.export.save_model`).
        device: "cpu", "cuda", "cuda:i" or "auto".
    """

    def __init__(self, model_dir: str | Path, device: str = "auto") -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"model folder {self.model_dir} has no config.json; give an exported HLIP model")
        self.device_spec = device
        self.loads = 0

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the weights and config."""
        return model_fingerprint(self.model_dir)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The free-form metadata stored next to the architecture (training run id, findings, ...)."""
        doc = json.loads((self.model_dir / "config.json").read_text())
        return dict(doc.get("metadata") or {})

    @property
    def model_id(self) -> str:
        """Readable identity: folder name and the first 12 hex digits of the fingerprint."""
        return f"{self.model_dir.name}@{self.fingerprint[:12]}"

    @cached_property
    def device(self) -> torch.device:
        """The torch device to run on."""
        import torch

        if self.device_spec == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device_spec)

    @cached_property
    def model(self) -> HLIP:
        """The model in eval mode on `device` (loaded on first access)."""
        from hlip.models.export import load_model

        log.info("loading model %s on %s", self.model_dir, self.device)
        self.loads += 1
        return load_model(self.model_dir, map_location=self.device).eval()

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The text tower's tokenizer."""
        from hlip.models.factory import create_tokenizer

        return create_tokenizer(self.model.cfg)

    @cached_property
    def logit_scale(self) -> float:
        """The learnt temperature, exp'd and clamped as in `HLIP.forward`."""
        from hlip.models.clip import MAX_LOGIT_SCALE

        return float(min(self.model.logit_scale.detach().exp().item(), MAX_LOGIT_SCALE))
