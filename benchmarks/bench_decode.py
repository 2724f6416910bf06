"""Decode speed per transfer syntax and decoder plugin, on the same frames.

Usage:
    .venv/bin/python benchmarks/bench_decode.py [--size 512] [--frames 8] [--repeat 3]

Writes `frames` CT-like slices (signed 16-bit, 12 bits used, smooth anatomy plus noise, air outside a disc) as
uncompressed files, transcodes each to every syntax `testkit.dicom_codecs` can make (pydicom's encoders, GDCM for
the JPEG process 1/14 syntaxes; baseline JPEG gets an 8-bit copy), then decodes every file with every installed
pydicom decoder plugin for its syntax. Prints ms per frame and decoded MB/s (best of `repeat`), the compression
ratio, and the largest error against the uncompressed frame. Asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder

from testkit.dicom_codecs import ENCODERS, transcode

Row = tuple[str, str, float, float | None, float | None, str]  # syntax, plugin, ratio, ms/frame, MB/s, error


def _slice(size: int, seed: int, bits8: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    j, i = np.mgrid[:size, :size] / size - 0.5
    body = np.hypot(i, j) < 0.45
    image = np.where(body, 40 + 400 * np.exp(-((i - 0.1) ** 2 + j**2) / 0.02), -1000) + rng.normal(0, 8, (size, size))
    if bits8:
        return np.clip((image + 1000) / 6, 0, 255).astype(np.uint8)
    return np.clip(image, -1024, 3071).astype(np.int16)


def _native(path: Path, pixels: np.ndarray) -> Path:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", pydicom.uid.generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "CT", *pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    eight = pixels.dtype == np.uint8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (8, 8, 7) if eight else (16, 12, 11)
    ds.PixelRepresentation = 0 if eight else 1
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def _decode(path: Path, plugin: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin=plugin)
    return np.asarray(ds.pixel_array)


def _shipped_12_bit(repeat: int) -> list[Row]:
    """12-bit extended JPEG: no encoder here makes it, so pydicom's shipped 1024x256 file is timed (no twin)."""
    import pydicom.data

    path = Path(pydicom.data.get_testdata_file("JPGExtended.dcm"))  # type: ignore[arg-type]
    rows: list[Row] = []
    for plugin in get_decoder(uid.JPEGExtended12Bit).available_plugins:
        try:
            frame = _decode(path, plugin)
        except Exception as exc:
            rows.append(("JPEGExtended12Bit*", plugin, 0.0, None, None, f"fails: {type(exc).__name__}"))
            continue
        best = min(_timed(path, plugin) for _ in range(repeat))
        rows.append(("JPEGExtended12Bit*", plugin, 0.0, 1000 * best, frame.nbytes / 1e6 / best, "no twin"))
    return rows


def _timed(path: Path, plugin: str) -> float:
    start = time.perf_counter()
    _decode(path, plugin)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for syntax in ENCODERS:
            bits8 = syntax == uid.JPEGBaseline8Bit
            frames = [_slice(args.size, k, bits8) for k in range(args.frames)]
            natives = [_native(root / f"n{k}_{bits8}.dcm", f) for k, f in enumerate(frames)]
            twins = [transcode(p, root / f"{uid.UID(syntax).keyword}_{k}.dcm", syntax) for k, p in enumerate(natives)]
            ratio = sum(p.stat().st_size for p in natives) / sum(p.stat().st_size for p in twins)
            for plugin in get_decoder(syntax).available_plugins:
                try:
                    error = max(
                        int(np.abs(_decode(t, plugin).astype(np.int32) - f).max())
                        for t, f in zip(twins, frames, strict=True)
                    )
                except Exception as exc:  # a plugin that refuses this file: say so in the table
                    rows.append((uid.UID(syntax).keyword, plugin, ratio, None, None, f"fails: {type(exc).__name__}"))
                    continue
                best = float("inf")
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    for t in twins:
                        _decode(t, plugin)
                    best = min(best, time.perf_counter() - start)
                mb = sum(f.nbytes for f in frames) / 1e6
                rows.append((uid.UID(syntax).keyword, plugin, ratio, 1000 * best / len(twins), mb / best, str(error)))
    rows += _shipped_12_bit(args.repeat)
    print(f"\n{args.frames} frames of {args.size}x{args.size}, best of {args.repeat} (ms/frame includes dcmread)\n")
    print(f"| {'syntax':<22} | {'plugin':<9} | ratio | ms/frame |   MB/s | max error |")
    print(f"|{'-' * 24}|{'-' * 11}|-------|----------|--------|-----------|")
    for name, plugin, ratio, ms, mbs, error_text in rows:  # *: pydicom's shipped JPGExtended.dcm, one frame
        ms_text, mbs_text = ("-", "-") if ms is None else (f"{ms:.2f}", f"{mbs:.0f}")
        ratio_text = f"{ratio:5.1f}" if ratio else "    -"
        print(f"| {name:<22} | {plugin:<9} | {ratio_text} | {ms_text:>8} | {mbs_text:>6} | {error_text:>9} |")


if __name__ == "__main__":
    main()
