"""Frozen sin-cos positional embeddings: depth x in-plane per scan, plus an optional scan-index table.

The spatial table is built for the configured token grid `(d, h, w)` and resampled trilinearly when an
input gives another grid, so a model trained at 48 slices evaluates at 144. Like upstream HLIP, each axis
takes a third of the channels, in the order (w, h, d); channels left over when the width is not a multiple
of 6 stay zero. The scan-index table (upstream `sequential_posemb`) gives each scan of a study a distinct
index: random distinct rows while training (as upstream), rows 0..n-1 in evaluation; when a study of the
batch has more scans than the table, the table is linearly resampled to n rows and rows 0..n-1 are used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hlip.models.packing import StudyPacking


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """Sin-cos embedding of float `positions [M]` -> `[M, dim]` (dim even)."""
    omega = torch.arange(dim // 2, dtype=torch.float32) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # [dim/2]
    angles = positions.float()[:, None] * omega[None]  # [M, dim/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # [M, dim]


def sincos_3d(grid_size: tuple[int, int, int], dim: int) -> Tensor:
    """Sin-cos table of a `(d, h, w)` grid -> `[d, h, w, dim]`."""
    axis_dim = 2 * (dim // 6)
    d, h, w = grid_size
    grid_d, grid_h, grid_w = torch.meshgrid(
        torch.arange(d, dtype=torch.float32),
        torch.arange(h, dtype=torch.float32),
        torch.arange(w, dtype=torch.float32),
        indexing="ij",
    )  # each [d, h, w]
    parts = [sincos_1d(g.flatten(), axis_dim) for g in (grid_w, grid_h, grid_d)]  # each [d*h*w, axis_dim]
    table = torch.cat([*parts, torch.zeros(d * h * w, dim - 3 * axis_dim)], dim=1)  # [d*h*w, dim]
    return table.view(d, h, w, dim)


def resample_3d(table: Tensor, grid_size: tuple[int, int, int]) -> Tensor:
    """Trilinear resampling of `[1, d, h, w, C]` to `[1, *grid_size, C]`."""
    if tuple(table.shape[1:4]) == tuple(grid_size):
        return table
    out = F.interpolate(table.permute(0, 4, 1, 2, 3), size=grid_size, mode="trilinear")  # [1, C, d', h', w']
    return out.permute(0, 2, 3, 4, 1)  # [1, d', h', w', C]


def resample_1d(table: Tensor, length: int) -> Tensor:
    """Linear resampling of `[1, M, C]` to `[1, length, C]`."""
    return F.interpolate(table.permute(0, 2, 1), size=length, mode="linear").permute(0, 2, 1)  # [1, length, C]


class PosEmbed3D(nn.Module):
    """Frozen positional embeddings of the patch tokens of a packed batch of scans.

    Buffers (persistent, so checkpoints carry them): `spatial [1, d, h, w, C]` and, when `max_scans > 0`,
    `scan [1, max_scans, C]`.

    Args:
        grid_size: Configured token grid `(d, h, w)`.
        dim: Token width C.
        max_scans: Rows of the scan-index table; 0 disables it.
    """

    spatial: Tensor
    scan: Tensor | None

    def __init__(self, grid_size: tuple[int, int, int], dim: int, max_scans: int = 0) -> None:
        super().__init__()
        self.register_buffer("spatial", sincos_3d(grid_size, dim)[None])
        table = sincos_1d(torch.arange(max_scans), dim)[None] if max_scans > 0 else None
        self.register_buffer("scan", table)

    def forward(self, grid_size: tuple[int, int, int], packing: StudyPacking) -> Tensor:
        """Embedding to add to patch tokens `[S, d, h, w, C]` (broadcastable: `[1 or S, d, h, w, C]`)."""
        spatial = resample_3d(self.spatial, grid_size)  # [1, d, h, w, C]
        if self.scan is None:
            return spatial
        return spatial + self.scan_embed(packing)[:, None, None, None, :]  # [S, d, h, w, C]

    def scan_embed(self, packing: StudyPacking) -> Tensor:
        """Scan-index embedding of every packed scan `[S, C]`."""
        assert self.scan is not None
        table, max_scans = self.scan, self.scan.shape[1]
        if max(packing.counts) <= max_scans:
            if not self.training:
                return table[0, packing.scan_pos]  # [S, C]
            rows = torch.rand(packing.num_studies, max_scans, device=table.device).argsort(dim=1)  # [B, M]
            return table[0, rows[packing.scan_study, packing.scan_pos]]  # [S, C]
        out = table.new_empty(packing.num_scans, table.shape[2])  # [S, C]
        for bucket in packing.buckets:  # some study has more scans than the table: resample it
            rows = table if bucket.num_scans <= max_scans else resample_1d(table, bucket.num_scans)
            out[bucket.scans.flatten()] = rows[0, : bucket.num_scans].repeat(len(bucket.studies), 1)
        return out
