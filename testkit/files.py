"""Folder digests for tests: which files a step wrote or changed, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, keyed by its POSIX path relative to `root`."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
