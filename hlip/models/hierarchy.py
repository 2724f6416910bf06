"""Regrouping tokens between the attention levels of HLIP: slice, scan and study.

No new attention operator: the token tensor is reshaped so that its batch dimension enumerates the attention
groups of the level, each group led by its own copy of the prefix (CLS + register) tokens:

| level | groups            | tensor                                   |
|-------|-------------------|------------------------------------------|
| slice | one per slab      | `[S*d, P + t, C]`                        |
| scan  | one per scan      | `[S, P + d*t, C]`                        |
| study | one per study     | `[B, P + n*d*t, C]` (all studies n scans) |
|       |                   | `[1, T, C]` packed (varying scan counts) |

with S packed scans, B studies, P prefix tokens, d slabs per scan, t patch tokens per slab. As in upstream
HLIP, prefix tokens are averaged when groups merge (slab -> scan -> study) and copied when they split.
When studies have different scan counts, the study level is one packed sequence ordered bucket by bucket
(`packing.StudyPacking`): within a bucket every study has the same length, so attention runs on a dense
view `[G_k, P + n_k*d*t, C]` of it (see `AttentionGroups`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hlip.models.config import LEVELS
from hlip.models.packing import StudyPacking


@dataclass(frozen=True)
class AttentionGroups:
    """Variable-length attention groups of a packed sequence `[1, T, C]`.

    Attributes:
        sizes: `(G_k, L_k)` per bucket: the next `G_k * L_k` tokens form `G_k` groups of `L_k` tokens.
        token_group: Study index of every token `[T]` (for per-study stochastic depth).
        num_groups: Number of studies B.
    """

    sizes: tuple[tuple[int, int], ...]
    token_group: Tensor
    num_groups: int


class TokenLayout:
    """How one batch's tokens are grouped at each level; built once per forward pass.

    Args:
        packing: Study/scan bookkeeping of the batch.
        num_prefix: P, prefix tokens per group.
        slabs: d, slabs (token rows along depth) per scan.
        slab_tokens: t, patch tokens per slab (h*w, fewer after patch dropout).
    """

    def __init__(self, packing: StudyPacking, num_prefix: int, slabs: int, slab_tokens: int) -> None:
        self.packing = packing
        self.num_prefix = num_prefix
        self.slabs = slabs
        self.slab_tokens = slab_tokens
        self.scan_tokens = slabs * slab_tokens
        self._join_index: Tensor | None = None
        self._split_index: Tensor | None = None
        self._groups: AttentionGroups | None = None
        if not packing.uniform:
            self._build_packed_index()

    def _build_packed_index(self) -> None:
        """Index of the packed study sequence into `cat([prefix [B*P], patches [S*L]])` rows."""
        P, L, B = self.num_prefix, self.scan_tokens, self.packing.num_studies
        device = self.packing.scan_study.device
        rows, sizes, token_group = [], [], []
        for bucket in self.packing.buckets:
            G, n = bucket.scans.shape
            prefix_rows = bucket.studies[:, None] * P + torch.arange(P, device=device)  # [G, P]
            patch_rows = bucket.scans[:, :, None] * L + torch.arange(L, device=device)  # [G, n, L]
            patch_rows = B * P + patch_rows.reshape(G, n * L)  # [G, n*L]
            rows.append(torch.cat([prefix_rows, patch_rows], dim=1).flatten())  # [G*(P + n*L)]
            sizes.append((G, P + n * L))
            token_group.append(bucket.studies.repeat_interleave(P + n * L))  # [G*(P + n*L)]
        self._join_index = torch.cat(rows)  # [T]
        self._split_index = torch.argsort(self._join_index)  # [T]
        self._groups = AttentionGroups(tuple(sizes), torch.cat(token_group), B)

    def num_groups(self, level: str) -> int:
        """Number of attention groups (prefix-token copies) at `level`."""
        S = self.packing.num_scans
        return {"slice": S * self.slabs, "scan": S, "study": self.packing.num_studies}[level]

    def groups(self, level: str) -> AttentionGroups | None:
        """Variable-length groups for the attention at `level`; None when the tensor is a dense batch."""
        return self._groups if level == "study" else None

    def join(self, prefix: Tensor, patches: Tensor, level: str) -> Tensor:
        """Assemble the token tensor of `level` from prefix `[G, P, C]` and patches `[S, d, t, C]`."""
        S, d, t, C = patches.shape
        if level == "slice":
            return torch.cat([prefix, patches.reshape(S * d, t, C)], dim=1)  # [S*d, P + t, C]
        if level == "scan":
            return torch.cat([prefix, patches.reshape(S, d * t, C)], dim=1)  # [S, P + d*t, C]
        B = self.packing.num_studies
        if self._join_index is None:
            return torch.cat([prefix, patches.reshape(B, -1, C)], dim=1)  # [B, P + n*d*t, C]
        flat = torch.cat([prefix.reshape(-1, C), patches.reshape(-1, C)])  # [B*P + S*d*t, C]
        return flat[self._join_index][None]  # [1, T, C]

    def split(self, x: Tensor, level: str) -> tuple[Tensor, Tensor]:
        """Inverse of `join`: prefix `[G, P, C]` and patches `[S, d, t, C]`."""
        P, C = self.num_prefix, x.shape[-1]
        S, d, t = self.packing.num_scans, self.slabs, self.slab_tokens
        if level == "study" and self._split_index is not None:
            flat = x[0][self._split_index]  # [B*P + S*d*t, C]
            B = self.packing.num_studies
            return flat[: B * P].view(B, P, C), flat[B * P :].view(S, d, t, C)
        return x[:, :P], x[:, P:].reshape(S, d, t, C)

    def move_prefix(self, prefix: Tensor, src: str, dst: str) -> Tensor:
        """Carry prefix tokens from `src` groups to `dst` groups: mean when merging, copy when splitting."""
        i, j = LEVELS.index(src), LEVELS.index(dst)
        while i < j:  # merge: slab -> scan -> study
            prefix = self._merge(prefix, LEVELS[i])
            i += 1
        while i > j:  # split: study -> scan -> slab
            prefix = self._split(prefix, LEVELS[i])
            i -= 1
        return prefix

    def _merge(self, prefix: Tensor, level: str) -> Tensor:
        P, C = prefix.shape[1:]
        if level == "slice":
            return prefix.view(-1, self.slabs, P, C).mean(dim=1)  # [S, P, C]
        return self.packing.study_mean(prefix)  # [B, P, C]

    def _split(self, prefix: Tensor, level: str) -> Tensor:
        P, C = prefix.shape[1:]
        if level == "study":
            return prefix.index_select(0, self.packing.scan_study)  # [S, P, C]
        return prefix[:, None].expand(-1, self.slabs, P, C).reshape(-1, P, C)  # [S*d, P, C]

    def regroup(self, x: Tensor, src: str, dst: str) -> Tensor:
        """Token tensor of level `src` -> token tensor of level `dst`."""
        if src == dst:
            return x
        prefix, patches = self.split(x, src)
        return self.join(self.move_prefix(prefix, src, dst), patches, dst)
