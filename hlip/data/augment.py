"""Image augmentation of training items that keeps both the finding labels and the report true.

```python
policy = AugmentPolicy(shift=(2, 4, 4), gamma=0.1)
rng = item_rng(seed, epoch, index, AUGMENT_STREAM)  # hlip.data.sampling
scans = augment_scans(scans, policy, rng)  # uint8 [N, D, H, W] -> same shape and dtype
```

Each scan of a study moves and changes contrast on its own draw (the scans of a real study are acquired apart and
are not co-registered). There is no left-right flip on purpose: reports name the side of a lesion ("left frontal"),
so a flipped volume would contradict its own report. Evaluation items are never augmented.

The draws come from their own generator per item (`hlip.data.sampling.item_rng` with `AUGMENT_STREAM`), apart from
the one that picks scans and report sentences, so switching augmentation on or off changes no other choice, and a
resumed run draws the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["AUGMENT_STREAM", "AugmentPolicy", "augment_scans"]

AUGMENT_STREAM = 0x41554755  # "AUGU": `item_rng(seed, epoch, index, AUGMENT_STREAM)` draws apart from scans, text


@dataclass(frozen=True)
class AugmentPolicy:
    """How training scans are perturbed (all zero: not at all, the default).

    Attributes:
        shift: Largest translation per axis (slices, rows, columns), in voxels of the ingested volume. Each scan
            moves by its own uniform integer draw in [-shift, shift] per axis; voxels moved in are air (0).
        gamma: Standard deviation of log(gamma) of a per-scan intensity curve v -> 255 (v / 255) ** gamma (a
            scanner's or protocol's contrast difference that the model's intensity normalisation does not undo).
    """

    shift: tuple[int, int, int] = (0, 0, 0)
    gamma: float = 0.0

    def __post_init__(self) -> None:
        if len(self.shift) != 3 or any(int(s) != s or s < 0 for s in self.shift):
            raise ValueError(f"augment.shift must be 3 non-negative integers (slices, rows, columns), got {self.shift}")
        object.__setattr__(self, "shift", tuple(int(s) for s in self.shift))
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"augment.gamma (std of log gamma) must lie in [0, 1], got {self.gamma}")

    @property
    def enabled(self) -> bool:
        """Whether any perturbation is on."""
        return any(self.shift) or self.gamma > 0.0


def augment_scans(scans: NDArray[np.uint8], policy: AugmentPolicy, rng: np.random.Generator) -> NDArray[np.uint8]:
    """A perturbed copy of a study's scans `[N, D, H, W]` uint8 (the input is not modified).

    Raises:
        ValueError: `scans` is not a uint8 `[N, D, H, W]` array, or a shift is not smaller than its axis.
    """
    if scans.dtype != np.uint8 or scans.ndim != 4:
        raise ValueError(f"augment_scans wants uint8 [N, D, H, W] scans, got {scans.dtype} {scans.shape}")
    for axis, (limit, size) in enumerate(zip(policy.shift, scans.shape[1:], strict=True)):
        if limit >= size:
            raise ValueError(f"augment.shift[{axis}] = {limit} voxels is not smaller than the scans' axis ({size})")
    out = np.empty_like(scans)
    for n in range(scans.shape[0]):
        out[n] = _shifted(scans[n], rng.integers(-np.asarray(policy.shift), np.asarray(policy.shift) + 1))
        if policy.gamma > 0.0:
            out[n] = _gamma_table(float(np.exp(rng.normal(0.0, policy.gamma))))[out[n]]
    return out


def _shifted(volume: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.uint8]:
    """`volume` translated by whole voxels; what moves in is air."""
    if not offsets.any():
        return volume.copy()
    out = np.zeros_like(volume)
    target, source = [], []
    for offset, size in zip(offsets.tolist(), volume.shape, strict=True):
        target.append(slice(max(offset, 0), size + min(offset, 0)))
        source.append(slice(max(-offset, 0), size - max(offset, 0)))
    out[tuple(target)] = volume[tuple(source)]
    return out


def _gamma_table(gamma: float) -> NDArray[np.uint8]:
    """The 256-entry lookup table of v -> 255 (v / 255) ** gamma, rounded (0 stays 0 and 255 stays 255)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.rint(255.0 * levels**gamma), 0, 255).astype(np.uint8)
