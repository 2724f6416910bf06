"""Study and report embeddings of a benchmark, computed once per (model, benchmark) and cached as `.npz`.

The cache file `<cache_dir>/<model fp[:16]>-<benchmark fp[:16]>.npz` holds `study_ids [N]`, `image [N, E]`,
`report [N, E]` (zero rows where a study has no report), `has_report [N]` and `logit_scale []`. Every metric is
computed from these arrays, so changing prompts, thresholds or bootstrap settings never re-runs the vision tower.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hlip.evaluation.fingerprint import benchmark_fingerprint
from hlip.progress import ProgressReporter

if TYPE_CHECKING:
    import torch

    from hlip.evaluation.benchmarks.base import Benchmark
    from hlip.evaluation.model_handle import ModelHandle
    from hlip.models.clip import HLIP
    from hlip.models.text import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyEmbeddings:
    """L2-normalised embeddings of one benchmark under one model.

    Attributes:
        study_ids: `[N]` study ids, in `Benchmark.study_ids()` order.
        image: `[N, E]` study (image) embeddings.
        report: `[N, E]` report embeddings; zero rows where `has_report` is False.
        has_report: `[N]` bool.
        logit_scale: The model's temperature (exp'd), used by softmax-based zero-shot scores.
    """

    study_ids: np.ndarray
    image: np.ndarray
    report: np.ndarray
    has_report: np.ndarray
    logit_scale: float

    def __post_init__(self) -> None:
        n = len(self.study_ids)
        if self.image.shape[0] != n or self.report.shape != self.image.shape or self.has_report.shape != (n,):
            raise ValueError(
                f"inconsistent embeddings: {n} ids, image {self.image.shape}, report {self.report.shape}, "
                f"has_report {self.has_report.shape}"
            )

    def save(self, path: Path) -> None:
        """Write atomically (temporary file + rename), so a crash never leaves a half-written cache entry."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    study_ids=self.study_ids.astype(str),
                    image=self.image,
                    report=self.report,
                    has_report=self.has_report,
                    logit_scale=np.float64(self.logit_scale),
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> StudyEmbeddings:
        """Read a cache entry written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                study_ids=data["study_ids"].astype(str),
                image=data["image"].astype(np.float32),
                report=data["report"].astype(np.float32),
                has_report=data["has_report"].astype(bool),
                logit_scale=float(data["logit_scale"]),
            )


def cache_path(cache_dir: Path, model_fp: str, benchmark_fp: str) -> Path:
    """Where the embeddings of (model, benchmark) are cached."""
    return Path(cache_dir) / f"{model_fp[:16]}-{benchmark_fp[:16]}.npz"


def cached_embeddings(
    handle: ModelHandle, benchmark: Benchmark, cache_dir: Path | None, batch_size: int = 4
) -> tuple[StudyEmbeddings, bool]:
    """The embeddings of `benchmark` under `handle`'s model, from the cache when present.

    Returns:
        The embeddings and whether they came from the cache.
    """
    path = cache_path(cache_dir, handle.fingerprint, benchmark_fingerprint(benchmark)) if cache_dir else None
    if path is not None and path.is_file():
        embeddings = StudyEmbeddings.load(path)
        if list(embeddings.study_ids) == list(benchmark.study_ids()):
            log.info("embeddings from cache %s", path)
            return embeddings, True
        log.warning("cache entry %s lists other studies than the benchmark; recomputing", path)
    embeddings = compute_embeddings(handle, benchmark, batch_size)
    if path is not None:
        embeddings.save(path)
        log.info("embeddings cached at %s", path)
    return embeddings, False


def why_empty(benchmark: Benchmark) -> str:
    """Why a benchmark serves no study, from its `excluded()` table when it has one ("" otherwise)."""
    excluded = getattr(benchmark, "excluded", None)
    table = excluded() if callable(excluded) else None
    if table is None or len(table) == 0:
        return ""
    counts = table["reason"].value_counts()
    text = ": left out " + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    if set(counts.index) <= {"no_reference_label", "not_ingested"}:
        text += (" (no labelled study matches an ingested one: check the labels file, and that HLIP_DEID_KEY is the"
                 " key the part was ingested with)")  # fmt: skip
    return text


def compute_embeddings(handle: ModelHandle, benchmark: Benchmark, batch_size: int = 4) -> StudyEmbeddings:
    """Run every study (vision tower) and every report (text tower) of `benchmark` through the model."""
    ids = list(benchmark.study_ids())
    if not ids:
        raise ValueError(f"benchmark {benchmark.name!r} serves no studies{why_empty(benchmark)}")
    image = encode_studies(handle, benchmark, ids, batch_size)
    reports = benchmark.reports()
    report = np.zeros_like(image)
    has_report = np.zeros(len(ids), dtype=bool)
    if reports is not None:
        texts = [reports.get(i) for i in ids]
        rows = [k for k, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        if rows:
            report[rows] = encode_texts(handle, [str(texts[k]) for k in rows], batch_size=max(batch_size, 16))
            has_report[rows] = True
    return StudyEmbeddings(np.asarray(ids, dtype=str), image, report, has_report, handle.logit_scale)


def encode_studies(handle: ModelHandle, benchmark: Benchmark, ids: Sequence[str], batch_size: int) -> np.ndarray:
    """Study embeddings `[N, E]` (normalised) of a benchmark's studies, loaded batch by batch."""
    with ProgressReporter(f"evaluate {benchmark.name}: embedding studies", len(ids), unit="studies") as bar:
        return embed_volume_batches(handle.model, handle.device, bar.track(_batches(benchmark, ids, batch_size), len))


def embed_volume_batches(model: HLIP, device: torch.device, batches: Iterable[Sequence[np.ndarray]]) -> np.ndarray:
    """Study embeddings `[N, E]` (normalised): each batch's studies `[N_i, D, H, W]` zero-padded to its largest scan
    count, `scan_mask [B, Nmax]` marking the real ones; no gradients (the caller sets eval mode)."""
    import torch

    out: list[np.ndarray] = []
    with torch.no_grad():
        for volumes in batches:
            image, mask = pad_studies(volumes)
            features = model.encode_image(image.to(device), mask.to(device), normalize=True)  # [B, E]
            out.append(features.float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def encode_texts(handle: ModelHandle, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Text embeddings `[T, E]` (normalised) of `texts`, batched; no gradients."""
    return embed_texts(handle.model, handle.tokenizer, handle.device, texts, batch_size)


def embed_texts(
    model: HLIP, tokenizer: Tokenizer, device: torch.device, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """Text embeddings `[T, E]` (normalised) of `texts` with `model`'s text tower, batched; no gradients."""
    import torch

    out: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start : start + batch_size])).to(device)  # [b, L]
            out.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def pad_studies(volumes: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack studies `[N_i, D, H, W]` into `image [B, Nmax, 1, D, H, W]` (zero-padded) and `scan_mask [B, Nmax]`."""
    import torch

    n_max = max(v.shape[0] for v in volumes)
    shape = volumes[0].shape[1:]
    image = torch.zeros(len(volumes), n_max, 1, *shape, dtype=torch.float32)
    mask = torch.zeros(len(volumes), n_max, dtype=torch.bool)
    for b, volume in enumerate(volumes):
        image[b, : volume.shape[0], 0] = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
        mask[b, : volume.shape[0]] = True
    return image, mask


def _batches(benchmark: Benchmark, ids: Sequence[str], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive studies, at most `batch_size` at a time, cut where the scan size `(D, H, W)` changes."""
    batch: list[np.ndarray] = []
    for study_id in ids:
        volume = benchmark.load(study_id)
        if volume.ndim != 4 or volume.shape[0] < 1:
            raise ValueError(
                f"benchmark {benchmark.name!r}: study {study_id} loads as {volume.shape}, expected [N>=1, D, H, W]"
            )
        if batch and (len(batch) == batch_size or batch[0].shape[1:] != volume.shape[1:]):
            yield batch
            batch = []
        batch.append(volume)
    if batch:
        yield batch
