"""Bounded work per file: absurd header values are rejected before anything is allocated or built."""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from hlip.data.dicom import MAX_FRAMES, frame_infos, read_instance, read_pixels
from hlip.data.quarantine import Reason, RejectedError
from hlip.data.source import LocalSource
from hlip.data.study import _digest

Writer = Callable[..., list[Path]]


def _reason(src: LocalSource, path: str, *, pixels: bool = False) -> Reason:
    try:
        inst = read_instance(src, path)
        if pixels:
            read_pixels(src, inst)
    except RejectedError as exc:
        return exc.reason
    raise AssertionError(f"{path} was not rejected")


def _resave(path: Path, out: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(out)


def test_absurd_frame_count_is_rejected_at_once(tmp_path: Path, write_series: Writer) -> None:
    good = write_series(tmp_path / "s", n=1)[0]
    _resave(good, tmp_path / "frames", NumberOfFrames=2147483647)
    src = LocalSource(tmp_path)
    start = time.perf_counter()
    assert _reason(src, "frames") == Reason.IMPLAUSIBLE_HEADER
    assert time.perf_counter() - start < 10  # it was 11 minutes of FrameInfo objects before the check
    ds = pydicom.dcmread(tmp_path / "frames", stop_before_pixels=True)
    with pytest.raises(RejectedError):
        frame_infos(ds)  # the function itself never loops over an absurd count
    assert MAX_FRAMES < 2147483647


def test_matrix_larger_than_the_file_can_hold_is_implausible(tmp_path: Path, write_series: Writer) -> None:
    good = write_series(tmp_path / "s", n=1)[0]
    _resave(good, tmp_path / "matrix", Rows=65535, Columns=65535, NumberOfFrames=1000)
    _resave(good, tmp_path / "bits", BitsAllocated=13)
    _resave(good, tmp_path / "samples", SamplesPerPixel=9)
    src = LocalSource(tmp_path)
    for name in ("matrix", "bits", "samples"):
        assert _reason(src, name) == Reason.IMPLAUSIBLE_HEADER, name


def _claim_length(data: bytes, tag: bytes, vr: bytes, length: int) -> bytes:
    """Rewrite the 4-byte length of an explicit-VR element with a long VR (OB, OW, UN, UT)."""
    i = data.index(tag + vr)
    return data[: i + 8] + struct.pack("<I", length) + data[i + 12 :]


def test_huge_element_lengths_never_allocate(tmp_path: Path, write_series: Writer) -> None:
    good = write_series(tmp_path / "s", n=1)[0]
    ds = pydicom.dcmread(good)
    ds.add_new(0x00290010, "LO", "VENDOR")
    ds.add_new(0x00291010, "OB", b"\x00" * 8)
    ds.save_as(tmp_path / "private")
    data = (tmp_path / "private").read_bytes()
    (tmp_path / "header").write_bytes(_claim_length(data, b"\x29\x00\x10\x10", b"OB", 0xFFFFFFF0))
    (tmp_path / "pixels").write_bytes(_claim_length(data, b"\xe0\x7f\x10\x00", b"OW", 0xFFFFFFF0))
    src = LocalSource(tmp_path)
    tracemalloc.start()
    try:
        assert _reason(src, "header") == Reason.TRUNCATED
        assert _reason(src, "pixels", pixels=True) == Reason.TRUNCATED
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2  # pydicom alone allocated the claimed 4 GiB


def test_duplicate_digest_streams(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"\x01" * (8 * 1024 * 1024))
    src = LocalSource(tmp_path)
    tracemalloc.start()
    try:
        digest = _digest(src, "big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(digest) == 64
    assert peak < 4 * 1024 * 1024  # chunks of 1 MiB, never the 8 MiB file
