"""Compressed transfer syntaxes decode through our reader to the pixels of their uncompressed twins.

Twins are made here (pydicom's encoders, GDCM for the JPEG process 1/14 syntaxes) or shipped by pydicom.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom import uid
from pydicom.pixels import get_decoder

from hlip.data.dicom import read_instance, read_pixels
from hlip.data.source import LocalSource
from testkit.dicom_codecs import LOSSLESS, gdcm_pixels, transcode

from .conftest import phantom

Writer = Callable[..., list[Path]]
# lossy syntax -> largest error allowed (stored values)
LOSSY = {uid.JPEGLSNearLossless: 3, uid.JPEG2000: 8, uid.JPEGBaseline8Bit: 24}


def _ours(folder: Path, name: str) -> np.ndarray:
    src = LocalSource(folder)
    return read_pixels(src, read_instance(src, name))


def _native(tmp_path: Path, write_series: Writer, syntax: str) -> tuple[Path, np.ndarray]:
    """One CT-like slice: signed 16-bit with negative values; 12 bits (for JPEG process 14) or 8 bits (baseline)."""
    if syntax == uid.JPEGBaseline8Bit:
        pixels = (phantom(1, 32, 32) % 256).astype(np.int16)
        path = write_series(tmp_path / "native", n=1, pixels=pixels)[0]
        ds = pydicom.dcmread(path)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.astype(np.uint8).tobytes()
        ds.save_as(path)
        return path, pixels.astype(np.uint8)
    pixels = (phantom(1, 32, 32, seed=3) * 8 - 1024).astype(np.int16)
    return write_series(tmp_path / "native", n=1, modality="CT", pixels=pixels)[0], pixels


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: uid.UID(s).keyword)
def test_lossless_syntax_decodes_to_its_twin(tmp_path: Path, write_series: Writer, syntax: str) -> None:
    native, pixels = _native(tmp_path, write_series, syntax)
    twin = transcode(native, tmp_path / "twin.dcm", syntax)
    assert read_instance(LocalSource(tmp_path), "twin.dcm").transfer_syntax == syntax
    np.testing.assert_array_equal(_ours(tmp_path, "twin.dcm")[0], pixels[0])
    for plugin in get_decoder(syntax).available_plugins:  # every installed decoder agrees, not just the first
        ds = pydicom.dcmread(twin)
        ds.pixel_array_options(decoding_plugin=plugin)
        np.testing.assert_array_equal(ds.pixel_array, pixels[0], err_msg=plugin)


@pytest.mark.parametrize("syntax", list(LOSSY), ids=lambda s: uid.UID(s).keyword)
def test_lossy_syntax_decodes_within_tolerance(tmp_path: Path, write_series: Writer, syntax: str) -> None:
    native, pixels = _native(tmp_path, write_series, syntax)
    transcode(native, tmp_path / "twin.dcm", syntax)
    decoded = _ours(tmp_path, "twin.dcm")[0].astype(np.int32)
    error = np.abs(decoded - pixels[0].astype(np.int32))
    assert error.max() <= LOSSY[syntax]
    assert np.corrcoef(decoded.ravel(), pixels[0].ravel())[0, 1] > 0.99


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_pydicoms_shipped_compressed_files_match_their_twin(name: str) -> None:
    root = Path(pydicom.data.get_testdata_file("MR_small.dcm")).parent  # type: ignore[arg-type]
    np.testing.assert_array_equal(_ours(root, name), _ours(root, "MR_small.dcm"))


def test_12_bit_extended_jpeg_matches_gdcms_own_reader() -> None:
    path = Path(pydicom.data.get_testdata_file("JPGExtended.dcm"))  # type: ignore[arg-type]
    inst = read_instance(LocalSource(path.parent), path.name)
    assert inst.transfer_syntax == uid.JPEGExtended12Bit
    ours = _ours(path.parent, path.name)[0].astype(np.int32)
    assert ours.shape == (1024, 256)
    assert ours.min() >= 0
    assert ours.max() < 4096
    assert ours.std() > 0
    assert np.abs(ours - gdcm_pixels(path).astype(np.int32)).max() <= 1  # IDCT rounding, independent decoders


def test_a_compressed_series_ingests_to_the_same_volume_as_its_native_twin(
    tmp_path: Path, write_series: Writer
) -> None:
    from hlip.data.config import IngestConfig
    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest

    native = write_series(tmp_path / "native", n=6, modality="CT", pixels=phantom(6, 16, 16) * 4 - 1000)
    (tmp_path / "sv1").mkdir()
    for path in native:  # the same instances, each file as JPEG Lossless SV1
        transcode(path, tmp_path / "sv1" / path.name, uid.JPEGLosslessSV1)
    config = IngestConfig.from_dict(
        {"workers": 1, "series": {"min_slices": 6}, "preprocess": {"size": [6, 16, 16], "spacing": None}}
    )
    volumes = []
    for name in ("native", "sv1"):
        out = tmp_path / f"out_{name}"
        summary = ingest(tmp_path / name, out, config=config, key=HashKey("k"))
        assert summary["files_used"] == 6, summary["quarantined_by_reason"]
        volumes.append(sorted((p.name, np.load(p)) for p in (out / "volumes").rglob("*.npy")))
    assert [n for n, _ in volumes[0]] == [n for n, _ in volumes[1]]
    for (_, a), (_, b) in zip(*volumes, strict=True):
        np.testing.assert_array_equal(a, b)
