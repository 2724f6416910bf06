"""Packing studies with different scan counts into one batch, without duplicated scans.

A batch arrives padded, `x: [B, N, 1, D, H, W]` with `scan_mask: [B, N]` (True = real scan). The padded
scans are dropped before tokenisation: the `S = scan_mask.sum()` real scans are packed into `[S, 1, D, H, W]`
(study-major, in mask order), so no compute is spent on padding or on duplicates. Slice- and scan-level
attention groups all have the same length and stay dense batches. Only study-level attention sees groups of
different lengths: studies are bucketed by scan count, each bucket is one dense batch `[G_k, P + n_k*L, C]`
for `scaled_dot_product_attention` (no mask, so GPUs keep the flash kernel), see `hierarchy.TokenLayout`.
Everything a study's output depends on is computed from its own tokens, so the result does not depend on
its batch-mates (up to float rounding of the batched matmuls).

`fixed_scan_count` keeps upstream HLIP's alternative: shuffle, tile and truncate every study to N scans.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Bucket:
    """Studies that have the same number of scans.

    Attributes:
        num_scans: Scans per study in this bucket.
        studies: Study indices `[G]`.
        scans: Packed scan rows of each study `[G, num_scans]`.
    """

    num_scans: int
    studies: Tensor
    scans: Tensor


@dataclass(frozen=True)
class StudyPacking:
    """Which packed scan belongs to which study.

    Attributes:
        counts: Scans per study, length B.
        scan_study: Study index of every packed scan `[S]`.
        scan_pos: Position of every packed scan inside its study `[S]`.
        buckets: Studies grouped by scan count, ascending.
        bucket_inverse: Row of each study in the concatenation of the buckets' studies `[B]`.
    """

    counts: tuple[int, ...]
    scan_study: Tensor
    scan_pos: Tensor
    buckets: tuple[Bucket, ...]
    bucket_inverse: Tensor

    @classmethod
    def from_counts(cls, counts: list[int] | tuple[int, ...], device: torch.device | None = None) -> StudyPacking:
        """Packing of studies with `counts[b]` scans each, stored study-major."""
        if not counts or min(counts) < 1:
            raise ValueError(f"every study needs at least one scan, got counts {list(counts)}")
        # Index tensors are built from Python lists: constants for torch.compile, no data-dependent shapes.
        offsets = [sum(counts[:b]) for b in range(len(counts))]  # first packed row of each study
        scan_study = [b for b, n in enumerate(counts) for _ in range(n)]  # [S]
        scan_pos = [i for n in counts for i in range(n)]  # [S]
        buckets, order = [], []
        for n in sorted(set(counts)):
            studies = [b for b, c in enumerate(counts) if c == n]  # [G]
            scans = [[offsets[b] + i for i in range(n)] for b in studies]  # [G, n]
            buckets.append(Bucket(n, torch.tensor(studies, device=device), torch.tensor(scans, device=device)))
            order += studies
        inverse = sorted(range(len(order)), key=order.__getitem__)  # [B] row of each study in bucket order
        return cls(
            tuple(counts),
            torch.tensor(scan_study, device=device),
            torch.tensor(scan_pos, device=device),
            tuple(buckets),
            torch.tensor(inverse, device=device),
        )

    @classmethod
    def from_batch(cls, x: Tensor, scan_mask: Tensor | None = None) -> StudyPacking:
        """Packing of a batch `x: [B, N, ...]` with an optional `scan_mask: [B, N]` (True = real scan)."""
        B, N = x.shape[:2]
        if scan_mask is None:
            return cls.from_counts([N] * B, device=x.device)
        if scan_mask.shape != (B, N) or scan_mask.dtype != torch.bool:
            raise ValueError(
                f"scan_mask must be a bool tensor of shape {(B, N)}, got {scan_mask.dtype} {scan_mask.shape}"
            )
        return cls.from_counts(scan_mask.sum(dim=1).tolist(), device=x.device)

    @property
    def num_studies(self) -> int:
        """B."""
        return len(self.counts)

    @property
    def num_scans(self) -> int:
        """S, the number of real (packed) scans."""
        return int(sum(self.counts))

    @property
    def uniform(self) -> bool:
        """True when all studies have the same scan count (the dense, upstream-identical path)."""
        return len(self.buckets) == 1

    def study_mean(self, t: Tensor) -> Tensor:
        """Mean over the scans of each study: `[S, ...] -> [B, ...]`."""
        return self._per_study(t, torch.mean)

    def study_max(self, t: Tensor) -> Tensor:
        """Maximum over the scans of each study: `[S, ...] -> [B, ...]`."""
        return self._per_study(t, torch.amax)

    def per_study(self, t: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
        """`reduce([G, n, ...])` applied to the n scans of each study, bucket by bucket: `[S, ...] -> [B, ...]`.

        `reduce` gets every study of one scan count at once and returns one row per study (`[G, ...]`); it never
        sees a padded scan.
        """
        return self._per_study(t, lambda grouped, dim: reduce(grouped))

    def _per_study(self, t: Tensor, reduce: Callable[..., Tensor]) -> Tensor:
        """`reduce(..., dim=1)` over the scans of each study, bucket by bucket: `[S, ...] -> [B, ...]`."""
        if self.uniform:
            return reduce(t.view(self.num_studies, self.counts[0], *t.shape[1:]), dim=1)  # [B, ...]
        parts = [reduce(t[b.scans], dim=1) for b in self.buckets]  # each [G_k, ...]
        return torch.cat(parts)[self.bucket_inverse]  # [B, ...]


def pack_scans(x: Tensor, scan_mask: Tensor | None = None) -> Tensor:
    """Drop padded scans: `[B, N, 1, D, H, W] -> [S, 1, D, H, W]` (study-major)."""
    return x.flatten(0, 1) if scan_mask is None else x[scan_mask]


def fixed_scan_count(
    x: Tensor, scan_mask: Tensor | None, num_scans: int, generator: torch.Generator | None = None
) -> Tensor:
    """Upstream HLIP's fixed-N sampling: tile (repeat) or truncate every study to `num_scans` scans.

    Each study's real scans are shuffled when a generator is given (upstream shuffles during training),
    repeated until there are at least `num_scans`, and truncated to `num_scans`.

    Args:
        x: Padded batch `[B, N, 1, D, H, W]`.
        scan_mask: `[B, N]` bool, True for real scans; None means all are real.
        num_scans: Scans per study after tiling/truncation.
        generator: Random generator for the shuffle; None keeps the order.

    Returns:
        `[B, num_scans, 1, D, H, W]`, every study with exactly `num_scans` scans.
    """
    studies = []
    for b in range(x.shape[0]):
        real = x[b] if scan_mask is None else x[b][scan_mask[b]]  # [n, 1, D, H, W]
        n = real.shape[0]
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        index = order.repeat(math.ceil(num_scans / n))[:num_scans].to(x.device)  # [num_scans]
        studies.append(real[index])
    return torch.stack(studies)  # [B, num_scans, 1, D, H, W]
