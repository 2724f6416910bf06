"""Fingerprints that key the embedding cache: one of the model folder, one of the benchmark's content.

The model fingerprint is the sha256 of `model.safetensors` and `config.json` (the export format of
`hlip.models.export`), so a retrained model never reuses another model's embeddings. The benchmark
fingerprint covers its name, classes, study ids, labels and reports, plus the adapter's own `fingerprint()`
when it defines one (e.g. a hash of its scan manifest, which catches re-preprocessed volumes under the same ids).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hlip.evaluation.benchmarks.base import Benchmark

CHUNK = 1 << 20


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 (hex) of an exported model folder's `model.safetensors` + `config.json`.

    Raises:
        FileNotFoundError: The folder lacks one of the two files.
    """
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        path = model_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{model_dir} is not an exported HLIP model: {name} is missing")
        digest.update(name.encode())
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
    return digest.hexdigest()


def benchmark_fingerprint(benchmark: Benchmark) -> str:
    """sha256 (hex) of what a benchmark serves: name, task, classes, ids, labels, reports (+ its own fingerprint)."""
    digest = hashlib.sha256()
    for part in (type(benchmark).__qualname__, benchmark.name, benchmark.task, "|".join(benchmark.classes)):
        digest.update(part.encode() + b"\0")
    digest.update("\n".join(benchmark.study_ids()).encode() + b"\0")
    digest.update(benchmark.labels().to_csv().encode() + b"\0")
    reports = benchmark.reports()
    if reports is not None:
        digest.update(reports.sort_index().to_csv().encode() + b"\0")
    own = getattr(benchmark, "fingerprint", None)
    if callable(own):
        digest.update(str(own()).encode())
    return digest.hexdigest()
