"""On-disk cache of validated LLM labels, so a rerun sends nothing for reports already labelled.

Key: sha256 of (prompt fingerprint = prompt version + the finding lines it shows, model, sha256 of the report
text). One JSON file per key under ``<dir>/<key[:2]>/<key>.json``, written atomically (safe with many threads
and processes). Only answers that passed validation are stored; the cache holds labels and token counts, never
the report text.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_key(prompt_fingerprint: str, model: str, report: str) -> str:
    """The cache key of one report under one prompt and model."""
    text_hash = hashlib.sha256(report.encode()).hexdigest()
    return hashlib.sha256(f"{prompt_fingerprint}\x00{model}\x00{text_hash}".encode()).hexdigest()


class LabelCache:
    """A folder of cached answers.

    Args:
        root: The cache folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached record of `key`, or None (an unreadable entry counts as a miss)."""
        path = self._path(key)
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store `record` under `key` (atomic replace)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(tmp, path)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
