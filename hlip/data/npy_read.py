"""`.npy` scan volumes read straight into the caller's array: one read per volume, no intermediate copy.

A training item stacks the chosen scans of a study (`[N, D, H, W]` uint8). `np.load` per scan and `np.stack` wrote
every byte twice into freshly allocated arrays, and at the upstream resolution (8 scans of 48x224x224, 19 MB a study)
the first touch of those pages cost more than the reads (`docs/scale.md` section 4). Here each volume's header is read
first (shape and dtype, so the study array can be allocated once), then its data is read into its slot of that array.

```python
stored = [open_npy(f) for f in files]           # header only: shape, dtype
out = np.empty((len(stored), *stored[0].shape), np.uint8)
for i, volume in enumerate(stored):
    volume.fill(out[i])                         # one read into the destination
```
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

__all__ = ["StoredVolume", "bytes_npy", "npy_header", "open_npy", "pread_npy", "require_training_volume"]

HEAD_BYTES = 4096  # covers any header numpy writes for a 3-D array (its own reader refuses headers over 10,000 bytes)


@dataclass(frozen=True)
class StoredVolume:
    """A volume whose header has been read: its shape and dtype, and `fill(out)`, which reads its data into `out`
    (C-contiguous, of `shape` and `dtype`) and raises OSError when fewer bytes than the header promises are stored."""

    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    fill: Callable[[np.ndarray], None]


def require_training_volume(volume: StoredVolume, name: str) -> StoredVolume:
    """`volume` when it is what training reads and ingest writes (uint8 `[D, H, W]`): the one check the training
    dataset and `hlip pack` make.

    Raises:
        ValueError: Naming `name`, its dtype and shape.
    """
    if volume.dtype != np.uint8 or len(volume.shape) != 3:
        raise ValueError(f"{name} is {volume.dtype} {list(volume.shape)}, not uint8 [D, H, W]")
    return volume


def npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], np.dtype[np.generic], bool]:
    """`(shape, dtype, fortran_order)` of the `.npy` header at `stream`'s position, leaving it at the data.

    Raises:
        ValueError: Not a `.npy` header (numpy's own checks), or an object dtype (np.load refuses those too).
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    if dtype.hasobject:
        raise ValueError("object arrays are not volumes")
    return tuple(int(n) for n in shape), dtype, bool(fortran)


def open_npy(stream: io.BufferedReader) -> StoredVolume:
    """The volume stored in the open file `stream` (header read now, data read by `fill`)."""
    shape, dtype, fortran = npy_header(stream)

    def fill(out: np.ndarray) -> None:
        target = np.empty(shape[::-1], dtype) if fortran else out  # Fortran order: the C-order bytes of out.T
        _read_exact(lambda view, done: stream.readinto(view), target)
        if fortran:
            out[...] = target.T

    return StoredVolume(shape, dtype, fill)


def pread_npy(fd: int, offset: int, size: int) -> StoredVolume:
    """The volume stored as the `size` bytes of a `.npy` file at `offset` of the open file `fd` (a pack's shard).

    Raises:
        ValueError: As `_member_header`.
    """
    shape, dtype, start = _member_header(os.pread(fd, min(size, HEAD_BYTES), offset), size)

    def fill(out: np.ndarray) -> None:
        _read_exact(lambda view, done: os.preadv(fd, [view], offset + start + done), out)

    return StoredVolume(shape, dtype, fill)


def bytes_npy(data: bytes) -> StoredVolume:
    """The volume held in `data`, a pack member's whole `.npy` bytes fetched at once (an S3 range); `fill` copies
    them into the destination (viewed, not copied before: np.load would copy them once more through a file object).

    Raises:
        ValueError: As `_member_header`.
    """
    shape, dtype, start = _member_header(data[:HEAD_BYTES], len(data))
    volume = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=start).reshape(shape)

    def fill(out: np.ndarray) -> None:
        out[...] = volume

    return StoredVolume(shape, dtype, fill)


def _member_header(head: bytes, size: int) -> tuple[tuple[int, ...], np.dtype[np.generic], int]:
    """`(shape, dtype, data offset)` of a pack member's `.npy` bytes, from their first bytes `head` and their `size`.

    Raises:
        ValueError: Not a `.npy` header, Fortran order (packs hold C-order volumes), or `size` bytes that do not hold
            exactly the array the header declares.
    """
    stream = io.BytesIO(head)
    shape, dtype, fortran = npy_header(stream)
    if fortran:
        raise ValueError("Fortran-ordered volume")
    start = stream.tell()
    if start + int(np.prod(shape)) * dtype.itemsize != size:
        raise ValueError(f"{size} bytes do not hold a {dtype} array of shape {shape}")
    return shape, dtype, start


def _read_exact(read: Callable[[memoryview, int], int | None], out: np.ndarray) -> None:
    """Fill `out`'s bytes with `read(view, done)`, which reads into `view` the data from byte `done` on and may
    return short; raise OSError when the data ends first."""
    view = out.data.cast("B")  # the array's own bytes (C-contiguous)
    total = 0
    while total < view.nbytes:
        got = read(view[total:], total)
        if not got:
            raise OSError(f"truncated: {total} of {view.nbytes} data bytes stored")
        total += got
