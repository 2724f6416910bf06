"""Volumes read straight into a destination array equal np.load's, and damaged files fail loudly."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from hlip.data.npy_read import _read_exact, npy_header, open_npy, pread_npy


def _volume(seed: int, shape: tuple[int, ...] = (5, 7, 9)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array(stream, array, version=version)
    return stream.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_a_file_read_into_a_slot_equals_np_load(tmp_path: Path, version: tuple[int, int], order: str) -> None:
    array = np.asarray(_volume(1), order=order)
    path = tmp_path / "v.npy"
    path.write_bytes(_npy_bytes(array, version))
    with open(path, "rb") as f:
        stored = open_npy(f)
        assert stored.shape == array.shape
        assert stored.dtype == np.uint8
        out = np.full((2, *array.shape), 7, np.uint8)
        stored.fill(out[1])
    np.testing.assert_array_equal(out[1], np.load(path))
    assert (out[0] == 7).all()  # the neighbouring slot is untouched


def test_a_truncated_file_raises_instead_of_leaving_the_slot_partly_written(tmp_path: Path) -> None:
    data = _npy_bytes(_volume(2))
    path = tmp_path / "cut.npy"
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="could only read 305 elements"):
        np.load(path)  # numpy refuses it too
    with open(path, "rb") as f:
        stored = open_npy(f)
        with pytest.raises(OSError, match=r"truncated: 305 of 315 data bytes"):
            stored.fill(np.empty(stored.shape, np.uint8))


def test_headers_numpy_refuses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="magic string is not correct"):
        npy_header(io.BytesIO(b"not a numpy file at all"))
    with pytest.raises(ValueError, match="object arrays"):
        npy_header(io.BytesIO(_npy_bytes(np.array([1, None], dtype=object))))


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_a_volume_inside_a_shard_is_read_at_its_offset(tmp_path: Path, version: tuple[int, int]) -> None:
    first, second = _volume(3), _volume(4, (3, 4, 5))
    blobs = [b"x" * 1000, _npy_bytes(first, version), b"y" * 513, _npy_bytes(second, version), b"z" * 7]
    path = tmp_path / "shard.tar"
    path.write_bytes(b"".join(blobs))
    fd = os.open(path, os.O_RDONLY)
    try:
        for array, at in ((first, 1), (second, 3)):
            offset = sum(len(b) for b in blobs[:at])
            stored = pread_npy(fd, offset, len(blobs[at]))
            out = np.empty(stored.shape, np.uint8)
            stored.fill(out)
            np.testing.assert_array_equal(out, array)
        with pytest.raises(ValueError, match="do not hold"):  # the index's size disagrees with the header
            pread_npy(fd, 1000, len(blobs[1]) - 1)
    finally:
        os.close(fd)


def test_a_shard_cut_inside_a_volume_raises(tmp_path: Path) -> None:
    data = _npy_bytes(_volume(5))
    path = tmp_path / "shard.tar"
    path.write_bytes(data[:200])
    fd = os.open(path, os.O_RDONLY)
    try:
        stored = pread_npy(fd, 0, len(data))  # the index says the whole volume is there
        with pytest.raises(OSError, match="truncated"):
            stored.fill(np.empty(stored.shape, np.uint8))
    finally:
        os.close(fd)


def test_fortran_order_in_a_shard_is_refused(tmp_path: Path) -> None:
    data = _npy_bytes(np.asfortranarray(_volume(6)))
    path = tmp_path / "shard.tar"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="Fortran"):
            pread_npy(fd, 0, len(data))
    finally:
        os.close(fd)


def test_short_reads_are_continued_from_where_they_stopped() -> None:
    source = _volume(7).tobytes()
    calls: list[int] = []

    def trickle(view: memoryview, done: int) -> int:  # returns at most 11 bytes, as a pipe or a signal might
        calls.append(done)
        chunk = source[done : done + 11]
        view[: len(chunk)] = chunk
        return len(chunk)

    out = np.empty(len(source), np.uint8)
    _read_exact(trickle, out)
    assert out.tobytes() == source
    assert calls[:3] == [0, 11, 22]
    assert len(calls) == -(-len(source) // 11)


def test_a_fetched_member_is_checked_like_a_shard_member_and_copied_into_its_slot() -> None:
    from hlip.data.npy_read import bytes_npy

    array = _volume(8)
    data = _npy_bytes(array)
    stored = bytes_npy(data)
    out = np.empty(stored.shape, np.uint8)
    stored.fill(out)
    np.testing.assert_array_equal(out, array)
    with pytest.raises(ValueError, match="do not hold"):
        bytes_npy(data + b"\0")  # the fetched range holds more than the header declares
    with pytest.raises(ValueError, match="Fortran"):
        bytes_npy(_npy_bytes(np.asfortranarray(array)))
