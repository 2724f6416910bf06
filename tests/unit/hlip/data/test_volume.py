"""Volume building: geometric ordering, stack checks, splitting, rescale, multi-frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hlip.data.dicom import Instance, read_instance, read_pixels
from hlip.data.quarantine import Reason, RejectedError
from hlip.data.source import LocalSource
from hlip.data.volume import Volume, VolumeConfig, build_volume, order_stack, split_series

from .conftest import CORONAL, phantom

Writer = Callable[..., list[Path]]
CFG = VolumeConfig()


def _instances(root: Path) -> tuple[LocalSource, list[Instance]]:
    src = LocalSource(root)
    return src, [read_instance(src, f.path) for f in src.list_files()]


def _volume(root: Path, min_slices: int = 4) -> Volume:
    src, insts = _instances(root)
    stacks, strays = split_series(insts, min_slices, CFG)
    assert len(stacks) == 1
    assert not strays
    ordered = order_stack(stacks[0], min_slices, CFG)
    by_path = {i.path: i for i in insts}
    return build_volume(ordered, {p: read_pixels(src, by_path[p]) for p in ordered.paths})


@pytest.mark.parametrize("enhanced", [False, True])
def test_slices_are_ordered_by_position_and_rescaled(tmp_path: Path, write_series: Writer, enhanced: bool) -> None:
    pixels = phantom(8, 16, 16)
    write_series(tmp_path, n=8, pixels=pixels, slope=0.5, intercept=-100, shuffle=True, enhanced=enhanced)
    vol = _volume(tmp_path)
    # instance numbers run backwards; the volume must still follow the position order of the phantom
    np.testing.assert_allclose(vol.array, pixels * 0.5 - 100)
    assert vol.spacing == pytest.approx((2.0, 1.5, 1.5))
    np.testing.assert_allclose(vol.affine[:3, 3], [-12, -12, -30])


@pytest.mark.parametrize(
    ("positions", "reason"),
    [
        ([0, 2, 4, 6, 10, 12, 14, 16], Reason.SLICE_GAP),
        ([0, 2, 4, 4, 6, 8, 10, 12], Reason.DUPLICATE_POSITION),
        ([0, 2, 4, 6, 6.5, 8.5, 10.5, 12.5], Reason.IRREGULAR_SPACING),
    ],
)
def test_stack_checks_reject_with_reason(
    tmp_path: Path, write_series: Writer, positions: list[float], reason: Reason
) -> None:
    write_series(tmp_path, n=8, positions=positions)
    _, insts = _instances(tmp_path)
    stacks, _ = split_series(insts, 4, CFG)
    with pytest.raises(RejectedError) as info:
        order_stack(stacks[0], 4, CFG)
    assert info.value.reason == reason


def test_too_short_and_missing_geometry(tmp_path: Path, write_series: Writer) -> None:
    write_series(tmp_path, n=3)
    _, insts = _instances(tmp_path)
    stacks, _ = split_series(insts, 4, CFG)
    with pytest.raises(RejectedError, match="too_short"):
        order_stack(stacks[0], 4, CFG)


@pytest.mark.parametrize("odd", [{"orientation": CORONAL}, {"rows": 8, "cols": 8}])
def test_one_inconsistent_slice_is_split_off(tmp_path: Path, write_series: Writer, odd: dict[str, Any]) -> None:
    uid, study = "1.2.3.9", "1.2.3"
    write_series(tmp_path / "main", n=8, series_uid=uid, study_uid=study)
    write_series(tmp_path / "odd", n=1, series_uid=uid, study_uid=study, positions=[16.0], **odd)
    _, insts = _instances(tmp_path)
    stacks, strays = split_series(insts, 4, CFG)
    assert len(stacks) == 1
    assert len(stacks[0].slices) == 8
    assert [s.path for st in strays for s in st.slices] == ["odd/IM0000"]
    assert strays[0].reason == Reason.INCONSISTENT_SLICE


def test_b_values_split_into_stacks(tmp_path: Path, write_series: Writer) -> None:
    uid, study = "1.2.3.7", "1.2.3"
    write_series(tmp_path / "b0", n=6, series_uid=uid, study_uid=study, DiffusionBValue=0)
    write_series(tmp_path / "b1000", n=6, series_uid=uid, study_uid=study, DiffusionBValue=1000)
    _, insts = _instances(tmp_path)
    stacks, strays = split_series(insts, 4, CFG)
    assert sorted(s.label for s in stacks) == ["b0", "b1000"]
    assert not strays
    for stack in stacks:
        order_stack(stack, 4, CFG)  # each stack alone has no duplicate positions
