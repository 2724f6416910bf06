"""Prompt embeddings, cached per model: `<cache_dir>/<model fp[:16]>-text.npz` maps sentence -> embedding.

Re-running an evaluation with the same prompts needs no text tower at all; a new phrasing encodes only itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hlip.evaluation.embeddings import encode_texts

if TYPE_CHECKING:
    from hlip.evaluation.model_handle import ModelHandle


class PromptEncoder:
    """Sentences -> normalised text embeddings `[T, E]`, through a per-model on-disk cache.

    Args:
        handle: The model (loaded only when a sentence is not cached).
        cache_dir: Cache folder; None keeps the cache in memory only.
    """

    def __init__(self, handle: ModelHandle, cache_dir: Path | None) -> None:
        self.handle = handle
        self.path = Path(cache_dir) / f"{handle.fingerprint[:16]}-text.npz" if cache_dir else None
        self.table: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                self.table = dict(zip(data["texts"].astype(str), data["embeddings"].astype(np.float32), strict=True))
        self.encoded = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings `[len(texts), E]`, L2-normalised."""
        missing = sorted({t for t in texts if t not in self.table})
        if missing:
            vectors = encode_texts(self.handle, missing)
            self.table.update(zip(missing, vectors, strict=True))
            self.encoded += len(missing)
            self._save()
        return np.stack([self.table[t] for t in texts]).astype(np.float32)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        texts = sorted(self.table)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz.tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as f:
                np.savez(f, texts=np.asarray(texts, dtype=str), embeddings=np.stack([self.table[t] for t in texts]))
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
