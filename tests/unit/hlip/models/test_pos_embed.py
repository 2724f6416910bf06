"""Frozen sin-cos positions: layout of the 3D table, resampling, scan-index rows."""

from __future__ import annotations

import torch

from hlip.models.packing import StudyPacking
from hlip.models.pos_embed import PosEmbed3D, resample_3d, sincos_1d, sincos_3d


def test_sincos_1d_values() -> None:
    table = sincos_1d(torch.arange(3), 8)
    assert table.shape == (3, 8)
    assert torch.equal(table[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin(0), cos(0)
    torch.testing.assert_close(table[2, 0], torch.sin(torch.tensor(2.0)))


def test_sincos_3d_axis_blocks_are_w_h_d() -> None:
    table = sincos_3d((2, 3, 4), 24)  # 8 channels per axis
    assert table.shape == (2, 3, 4, 24)
    assert torch.equal(table[0, 0, :, :8], sincos_1d(torch.arange(4), 8))  # first block: w
    assert torch.equal(table[0, :, 0, 8:16], sincos_1d(torch.arange(3), 8))  # then h
    assert torch.equal(table[:, 0, 0, 16:], sincos_1d(torch.arange(2), 8))  # then d


def test_width_not_multiple_of_six_pads_with_zeros() -> None:
    table = sincos_3d((2, 2, 2), 128)  # 3 x 42 channels + 2 zero channels
    assert torch.equal(table[..., 126:], torch.zeros(2, 2, 2, 2))


def test_resample_identity_and_new_grid() -> None:
    table = sincos_3d((2, 4, 4), 12)[None]
    assert resample_3d(table, (2, 4, 4)) is table
    up = resample_3d(table, (6, 4, 4))
    assert up.shape == (1, 6, 4, 4, 12)
    torch.testing.assert_close(up[0, :, 1, 2, 8:], up[0, :, 0, 0, 8:])  # depth block does not depend on h, w


def test_scan_rows_eval_train_and_beyond_table() -> None:
    pos = PosEmbed3D((1, 1, 1), 12, max_scans=4)
    assert pos.scan is not None
    packing = StudyPacking.from_counts([3, 1])
    rows = pos.eval().scan_embed(packing)
    assert torch.equal(rows, pos.scan[0, [0, 1, 2, 0]])
    train_rows = pos.train().scan_embed(packing)
    first = {tuple(r.tolist()) for r in train_rows[:3]}
    assert len(first) == 3  # distinct rows within a study
    long = pos.eval().scan_embed(StudyPacking.from_counts([6, 2]))  # 6 > 4 rows: resampled for that study
    assert long.shape == (8, 12)
    torch.testing.assert_close(long[0], pos.scan[0, 0])
    torch.testing.assert_close(long[5], pos.scan[0, 3])
    assert torch.equal(long[6:], pos.scan[0, :2])


def test_buffers_are_frozen_and_in_state_dict() -> None:
    pos = PosEmbed3D((2, 2, 2), 12, max_scans=3)
    assert set(pos.state_dict()) == {"spatial", "scan"}
    assert list(pos.parameters()) == []
    assert "scan" not in PosEmbed3D((2, 2, 2), 12, max_scans=0).state_dict()
