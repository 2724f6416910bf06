"""Regrouping between slice, scan and study levels: upstream semantics, round trips, packed studies."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from hlip.models.hierarchy import TokenLayout
from hlip.models.packing import StudyPacking, fixed_scan_count, pack_scans

P, C, D_SLABS, T = 2, 4, 3, 5  # prefix tokens, width, slabs per scan, tokens per slab
L = D_SLABS * T  # tokens per scan


# Upstream HLIP regrouping, restated for a fixed number of scans N (B studies, all with N scans).
def ref_merge(x: Tensor, k: int) -> Tensor:
    """k consecutive groups -> one: prefix averaged, patches concatenated."""
    prefix, src = x[:, :P], x[:, P:]
    G, n, c = src.shape
    prefix = prefix.reshape(G // k, k, P, c).mean(dim=1)
    return torch.cat([prefix, src.reshape(G // k, k * n, c)], dim=1)


def ref_split(x: Tensor, k: int) -> Tensor:
    """One group -> k: prefix copied, patches split."""
    prefix, src = x[:, :P], x[:, P:]
    G, n, c = src.shape
    prefix = prefix[:, None].expand(G, k, P, c)
    return torch.cat([prefix, src.reshape(G, k, n // k, c)], dim=2).reshape(G * k, P + n // k, c)


def tokens(level: str, studies: int, scans: int, seed: int = 0) -> Tensor:
    groups = {"slice": studies * scans * D_SLABS, "scan": studies * scans, "study": studies}[level]
    length = {"slice": T, "scan": L, "study": scans * L}[level]
    return torch.randn(groups, P + length, C, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("src", "dst", "reference"),
    [
        ("slice", "scan", lambda x, n: ref_merge(x, D_SLABS)),
        ("scan", "study", lambda x, n: ref_merge(x, n)),
        ("slice", "study", lambda x, n: ref_merge(x, n * D_SLABS)),
        ("scan", "slice", lambda x, n: ref_split(x, D_SLABS)),
        ("study", "scan", lambda x, n: ref_split(x, n)),
        ("study", "slice", lambda x, n: ref_split(x, n * D_SLABS)),
    ],
)
def test_regroup_matches_upstream_semantics(src: str, dst: str, reference: object) -> None:
    B, N = 2, 3
    layout = TokenLayout(StudyPacking.from_counts([N] * B), P, D_SLABS, T)
    x = tokens(src, B, N)
    out = layout.regroup(x, src, dst)
    expected = reference(x, N)  # type: ignore[operator]
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("counts", [[3, 3], [2, 1, 4]])
@pytest.mark.parametrize("level", ["slice", "scan", "study"])
def test_split_join_round_trip_is_exact(counts: list[int], level: str) -> None:
    layout = TokenLayout(StudyPacking.from_counts(counts), P, D_SLABS, T)
    S = sum(counts)
    prefix = torch.randn(layout.num_groups(level), P, C)
    patches = torch.randn(S, D_SLABS, T, C)
    x = layout.join(prefix, patches, level)
    prefix2, patches2 = layout.split(x, level)
    assert torch.equal(prefix2, prefix)
    assert torch.equal(patches2, patches)


@pytest.mark.parametrize("counts", [[3, 3], [2, 1, 4]])
def test_split_then_merge_restores_tokens(counts: list[int]) -> None:
    layout = TokenLayout(StudyPacking.from_counts(counts), P, D_SLABS, T)
    x = layout.join(torch.randn(len(counts), P, C), torch.randn(sum(counts), D_SLABS, T, C), "study")
    back = layout.regroup(layout.regroup(x, "study", "slice"), "slice", "study")
    torch.testing.assert_close(back, x, rtol=0, atol=1e-6)


def test_packed_study_groups_hold_each_study_in_order() -> None:
    counts = [2, 1, 3, 1]
    packing = StudyPacking.from_counts(counts)
    layout = TokenLayout(packing, P, D_SLABS, T)
    prefix = torch.randn(len(counts), P, C)
    patches = torch.randn(sum(counts), D_SLABS, T, C)
    x = layout.join(prefix, patches, "study")  # [1, T_total, C]
    groups = layout.groups("study")
    assert groups is not None
    assert x.shape == (1, sum(P + n * L for n in counts), C)
    sizes = [g * n for g, n in groups.sizes]
    runs, run_groups = x[0].split(sizes), groups.token_group.split(sizes)
    offsets = [0, *torch.tensor(counts).cumsum(0).tolist()]
    for bucket, run, run_group, (g, n) in zip(packing.buckets, runs, run_groups, groups.sizes, strict=True):
        for row, study in enumerate(bucket.studies.tolist()):
            expected = torch.cat([prefix[study], patches[offsets[study] : offsets[study + 1]].reshape(-1, C)])
            assert torch.equal(run.view(g, n, C)[row], expected)
            assert (run_group.view(g, n)[row] == study).all()


def test_packed_merge_averages_prefix_per_study() -> None:
    counts = [2, 1, 3]
    layout = TokenLayout(StudyPacking.from_counts(counts), P, D_SLABS, T)
    scan_prefix = torch.randn(sum(counts), P, C)
    merged = layout.move_prefix(scan_prefix, "scan", "study")
    for b, chunk in enumerate(scan_prefix.split(counts)):
        torch.testing.assert_close(merged[b], chunk.mean(dim=0))
    copied = layout.move_prefix(merged, "study", "scan")
    assert torch.equal(copied, merged.repeat_interleave(torch.tensor(counts), dim=0))


def test_packing_from_mask_and_pack_scans() -> None:
    x = torch.arange(6.0).view(2, 3, 1, 1, 1, 1)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    packing = StudyPacking.from_batch(x, mask)
    assert packing.counts == (2, 1)
    assert pack_scans(x, mask).flatten().tolist() == [0.0, 2.0, 4.0]
    assert packing.scan_study.tolist() == [0, 0, 1]
    assert packing.scan_pos.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="at least one scan"):
        StudyPacking.from_batch(x, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="bool"):
        StudyPacking.from_batch(x, mask.long())


def test_fixed_scan_count_tiles_and_truncates_like_upstream() -> None:
    x = torch.arange(10.0).view(2, 5, 1, 1, 1, 1)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    out = fixed_scan_count(x, mask, num_scans=4)
    assert out.shape == (2, 4, 1, 1, 1, 1)
    assert out[0].flatten().tolist() == [0.0, 1.0, 0.0, 1.0]  # tiled
    assert out[1].flatten().tolist() == [5.0, 6.0, 7.0, 8.0]  # truncated
    shuffled = fixed_scan_count(x, mask, num_scans=4, generator=torch.Generator().manual_seed(0))
    assert sorted(shuffled[0].flatten().tolist()) == [0.0, 0.0, 1.0, 1.0]
