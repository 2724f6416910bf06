"""Compressed twins of DICOM files, for the decoder tests and benchmarks/bench_decode.py.

pydicom encodes RLE, JPEG-LS and JPEG 2000 through its plugins (pylibjpeg-rle, pyjpegls, pylibjpeg-openjpeg);
GDCM writes the JPEG process 1 and 14 syntaxes (baseline and lossless), which pydicom cannot encode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid

# syntax -> how a twin is made ("pydicom" with encoder options, or "gdcm")
ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    uid.RLELossless: ("pydicom", {}),
    uid.JPEGLSLossless: ("pydicom", {}),
    uid.JPEG2000Lossless: ("pydicom", {}),
    uid.JPEGLosslessSV1: ("gdcm", {}),
    uid.JPEGLossless: ("gdcm", {}),
    uid.JPEGLSNearLossless: ("pydicom", {"jls_error": 3}),
    uid.JPEG2000: ("pydicom", {"j2k_psnr": [90.0]}),  # against the 16-bit peak: RMSE about 2
    uid.JPEGBaseline8Bit: ("gdcm", {"quality": 95}),
}
LOSSLESS = (uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.JPEGLosslessSV1, uid.JPEGLossless)


def transcode(src: Path, dst: Path, syntax: str) -> Path:
    """Write `src` (an uncompressed file) to `dst` in `syntax`, with the same pixel data (lossy: approximately)."""
    how, options = ENCODERS[syntax]
    if how == "pydicom":
        ds = pydicom.dcmread(src)
        ds.compress(syntax, **options)
        ds.save_as(dst, enforce_file_format=True)
    else:
        _gdcm(src, dst, syntax, **options)
    return dst


def _gdcm(src: Path, dst: Path, syntax: str, quality: int | None = None) -> None:
    import gdcm

    names: dict[str, Any] = {
        uid.JPEGLosslessSV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
        uid.JPEGLossless: gdcm.TransferSyntax.JPEGLosslessProcess14,
        uid.JPEGBaseline8Bit: gdcm.TransferSyntax.JPEGBaselineProcess1,
    }
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise ValueError(f"GDCM cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(names[syntax]))
    change.SetInput(reader.GetImage())
    if quality is not None:
        codec = gdcm.JPEGCodec()
        codec.SetLossless(False)
        codec.SetQuality(quality)
        change.SetUserCodec(codec)
    if not change.Change():
        raise ValueError(f"GDCM cannot transcode {src} to {syntax}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise ValueError(f"GDCM cannot write {dst}")


def gdcm_pixels(path: Path) -> np.ndarray:
    """Decode with GDCM's own reader (not through pydicom): an independent reference, shape [rows, columns]."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise ValueError(f"GDCM cannot read {path}")
    image = reader.GetImage()
    fmt = image.GetPixelFormat()
    dtype = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16}[
        (fmt.GetBitsAllocated(), fmt.GetPixelRepresentation())
    ]
    rows, columns = image.GetDimension(1), image.GetDimension(0)
    raw = image.GetBuffer().encode("utf-8", "surrogateescape")  # GDCM's Python binding hands bytes over as str
    return np.frombuffer(raw, dtype)[: rows * columns].reshape(rows, columns)
