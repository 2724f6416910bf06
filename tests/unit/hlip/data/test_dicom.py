"""Safe DICOM reading: every failure becomes a file-level reason; compressed and multi-frame files decode."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from hlip.data.dicom import _FRAME_KEYWORDS, _T, Instance, _native_pixels, keyword_tags, read_instance, read_pixels
from hlip.data.quarantine import Reason, RejectedError
from hlip.data.source import LocalSource

from .conftest import DeflatedExplicitVRLittleEndian, RLELossless, phantom

Writer = Callable[..., list[Path]]


def _reject(src: LocalSource, path: str, size: int | None = None) -> Reason:
    with pytest.raises(RejectedError) as info:
        read_instance(src, path, size)
    return info.value.reason


def test_bad_files_are_rejected_with_their_reason(tmp_path: Path, write_series: Writer) -> None:
    good = write_series(tmp_path / "s", n=1)[0]
    data = good.read_bytes()
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text.txt").write_text("hello, not a DICOM file\n" * 20)
    (tmp_path / "cut_header").write_bytes(data[:400])
    (tmp_path / "cut_pixels").write_bytes(data[:-100])
    src = LocalSource(tmp_path)
    assert _reject(src, "empty", 0) == Reason.EMPTY_FILE
    assert _reject(src, "text.txt") == Reason.NOT_DICOM
    assert _reject(src, "cut_header") in (Reason.TRUNCATED, Reason.UNREADABLE)
    inst = read_instance(src, "cut_pixels")  # the header is whole: only the pixels are cut
    with pytest.raises(RejectedError) as info:
        read_pixels(src, inst)
    assert info.value.reason == Reason.TRUNCATED


def test_missing_pixel_data_and_missing_uids(tmp_path: Path, write_series: Writer) -> None:
    path = write_series(tmp_path, n=1)[0]
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix")
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "nouid")
    src = LocalSource(tmp_path)
    with pytest.raises(RejectedError) as info:
        read_pixels(src, read_instance(src, "nopix"))
    assert info.value.reason == Reason.MISSING_PIXEL_DATA
    assert _reject(src, "nouid") == Reason.MISSING_UID


def test_dicomdir_and_undecodable_transfer_syntax(tmp_path: Path, write_series: Writer) -> None:
    root = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]
    assert _reject(LocalSource(root), "dicomdirtests/DICOMDIR") == Reason.DICOMDIR
    # MPEG-2 video: encapsulated, and no installed plugin decodes it
    ds = pydicom.dcmread(write_series(tmp_path / "s", n=1)[0])
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(tmp_path / "mpeg", enforce_file_format=True)
    src = LocalSource(tmp_path)
    with pytest.raises(RejectedError) as info:
        read_pixels(src, read_instance(src, "mpeg"))
    assert info.value.reason == Reason.UNSUPPORTED_TRANSFER_SYNTAX
    assert "MPEG2" in info.value.message


@pytest.mark.parametrize("syntax", [RLELossless, DeflatedExplicitVRLittleEndian])
def test_compressed_syntaxes_decode_losslessly(tmp_path: Path, write_series: Writer, syntax: str) -> None:
    pixels = phantom(1, 16, 16)
    path = write_series(tmp_path, n=1, transfer_syntax=syntax, pixels=pixels)[0]
    src = LocalSource(tmp_path)
    inst = read_instance(src, path.name)
    assert inst.transfer_syntax == syntax
    np.testing.assert_array_equal(read_pixels(src, inst)[0], pixels[0])


def test_enhanced_multiframe_gives_per_frame_geometry(tmp_path: Path, write_series: Writer) -> None:
    path = write_series(tmp_path, n=6, enhanced=True, spacing=3.0, slope=2.0, intercept=-10.0)[0]
    src = LocalSource(tmp_path)
    inst = read_instance(src, path.name)
    assert len(inst.frames) == 6
    assert sorted(f.position[2] for f in inst.frames if f.position) == pytest.approx([-30, -27, -24, -21, -18, -15])
    assert {(f.slope, f.intercept) for f in inst.frames} == {(2.0, -10.0)}
    assert read_pixels(src, inst).shape == (6, 16, 16)


def _file_with_raw_element(charset: str | None, vr: str, value: bytes) -> bytes:
    """A DICOM file (explicit VR little endian) whose last element is private (0009,1010) with these raw bytes."""
    import io
    import struct

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = pydicom.uid.MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.3"
    if charset:
        ds.SpecificCharacterSet = charset
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    value += b" " * (len(value) % 2)
    long_form = vr in ("OB", "OW", "UC", "UR", "UT", "UN")
    head = struct.pack("<HH2s", 0x0009, 0x1010, vr.encode())
    head += struct.pack("<HI", 0, len(value)) if long_form else struct.pack("<H", len(value))
    return buf.getvalue() + head + value


def test_text_values_left_lazy_by_the_header_check_never_fail_to_convert(tmp_path: Path) -> None:
    # the completeness check forces every value but these; that is safe only while converting them cannot raise
    from hlip.data.dicom import _TEXT_VRS

    rng = np.random.default_rng(7)
    path = tmp_path / "f.dcm"
    for charset in (
        None,
        "ISO_IR 100",
        "ISO_IR 192",
        "ISO 2022 IR 87",
        "ISO 2022 IR 6\\ISO 2022 IR 87",
        "GB18030",
        "?",
    ):
        for vr in sorted(_TEXT_VRS):
            for length in (0, 1, 2, 7, 64, 301, 1000):
                junk = rng.integers(0, 256, length, dtype=np.uint8).tobytes() + b"\\\x00=^\x1b$B\xff"
                path.write_bytes(_file_with_raw_element(charset, vr, junk))
                ds = pydicom.dcmread(path)
                assert vr == ds[0x00091010].VR
                _ = ds[0x00091010].value  # a raise fails the test, naming the VR and charset in its traceback


def test_frame_attributes_are_looked_up_by_real_tags() -> None:
    assert _T["ImagePositionPatient"] == 0x00200032
    assert all(_T[k] > 0 for k in _FRAME_KEYWORDS)
    with pytest.raises(KeyError, match="ImagePositionPatients"):  # a typo must not silently read tag 0
        keyword_tags(("ImagePositionPatient", "ImagePositionPatients"))


def _pixels_or_reason(src: LocalSource, inst: Instance) -> np.ndarray | Reason:
    try:
        return read_pixels(src, inst)
    except RejectedError as exc:
        return exc.reason


def test_pixels_read_from_the_header_offset_equal_a_full_parse() -> None:
    """Every file pydicom ships whose header read gives a pixel offset (native little endian, and Deflated from the
    dataset the header read inflated): the pixels read from that offset equal a full parse's (dtype and every
    value), or both fail with the same reason."""
    root = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]
    src = LocalSource(root)
    compared, offsets, syntaxes = 0, 0, set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            inst = read_instance(src, path.relative_to(root).as_posix())
        except RejectedError:
            continue
        if inst.pixel_offset is None:
            continue
        offsets += 1
        fast, full = _pixels_or_reason(src, inst), _pixels_or_reason(src, replace(inst, pixel_offset=None))
        if isinstance(fast, Reason) or isinstance(full, Reason):
            assert fast == full, path.name
            continue
        assert fast.dtype == full.dtype, path.name
        assert fast.shape == full.shape, path.name
        np.testing.assert_array_equal(fast, full, err_msg=path.name)
        if _native_pixels(src, inst) is not None:
            compared += 1
            syntaxes.add(inst.transfer_syntax)
    assert compared >= 20
    assert offsets >= compared
    # implicit and explicit VR little endian, and Deflated (pydicom's image_dfl.dcm)
    assert syntaxes == {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", DeflatedExplicitVRLittleEndian}


def test_no_pixel_offset_where_the_pixels_are_compressed(tmp_path: Path, write_series: Writer) -> None:
    path = write_series(tmp_path, n=1, transfer_syntax=RLELossless)[0]
    assert read_instance(LocalSource(tmp_path), path.name).pixel_offset is None


def test_deflated_pixels_come_from_the_dataset_the_header_read_inflated(tmp_path: Path, write_series: Writer) -> None:
    """One parse per Deflated file: the pixels are cut from the inflated dataset the header keeps, equal to a full
    parse's, without the file being opened again (it is gone by then)."""
    paths = write_series(
        tmp_path, n=3, rows=20, cols=24, transfer_syntax=DeflatedExplicitVRLittleEndian, enhanced=False
    )
    src = LocalSource(tmp_path)
    instances = [read_instance(src, p.name) for p in paths]
    full = [read_pixels(src, replace(i, pixel_offset=None)) for i in instances]
    for p in paths:
        p.unlink()
    for inst, expected in zip(instances, full, strict=True):
        assert inst.pixel_offset is not None
        assert inst.pixel_offset > 0
        fast = read_pixels(src, inst)
        assert fast.dtype == expected.dtype
        assert fast.shape == (1, 20, 24)
        np.testing.assert_array_equal(fast, expected)


def _deflated_with_pixel_length(path: Path, length: int) -> None:
    """Rewrite a Deflated file so that its Pixel Data element claims `length` bytes (inflate, patch, deflate)."""
    data = path.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")  # preamble, DICM, (0002,0000) and its value
    body = zlib.decompress(data[meta_end:], -zlib.MAX_WBITS)
    at = body.rindex(b"\xe0\x7f\x10\x00OW") + 8
    body = body[:at] + struct.pack("<I", length) + body[at + 4 :]
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    path.write_bytes(data[:meta_end] + packer.compress(body) + packer.flush())


def test_a_deflated_pixel_element_longer_than_the_inflated_dataset_is_truncated(
    tmp_path: Path, write_series: Writer
) -> None:
    """As for a native file: the element's claim is checked against the inflated dataset, by the read from the
    header's offset and by a full parse alike (a full parse used to accept it whenever the bytes present filled the
    image)."""
    path = write_series(tmp_path, n=1, rows=16, cols=16, transfer_syntax=DeflatedExplicitVRLittleEndian)[0]
    _deflated_with_pixel_length(path, 16 * 16 * 2 + 4096)
    src = LocalSource(tmp_path)
    inst = read_instance(src, path.name)
    assert inst.pixel_offset is not None
    assert _pixels_or_reason(src, inst) == Reason.TRUNCATED
    assert _pixels_or_reason(src, replace(inst, pixel_offset=None)) == Reason.TRUNCATED


class _RemoteLike(LocalSource):
    """The same files, read as ingest reads an object store: by bytes (a head first), never by local path."""

    def local_path(self, path: str) -> Path | None:
        return None


def _dark_deflated(path: Path, rows: int = 256, cols: int = 256) -> np.ndarray:
    """A valid Deflated slice whose file is far smaller than its inflated header: a long comment and black pixels
    (pydicom's own writer, zlib's default level). Returns the stored pixels."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = pydicom.uid.MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "P1", 1
    ds.ImageComments = "acquired without incident " * 120  # 3 KB of header that deflates to almost nothing
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing, ds.ImagePositionPatient = [1.0, 1.0], [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient, ds.SliceThickness = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 1.0
    pixels = np.zeros((rows, cols), np.uint16)
    pixels[rows // 2, cols // 2] = 1000
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return pixels


@pytest.mark.parametrize("source", [LocalSource, _RemoteLike])
def test_a_deflated_file_smaller_than_its_inflated_header_is_read(tmp_path: Path, source: type[LocalSource]) -> None:
    """Offsets of a Deflated file count in its inflated dataset: a valid file whose header inflates past the file's
    own size was rejected as `truncated` (48 valid slices of the demo corpus were, before session 28)."""
    from hlip.data.dicom import read_identity

    path = tmp_path / "dark.dcm"
    pixels = _dark_deflated(path)
    data = path.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")  # preamble, DICM, (0002,0000) and its value
    inflated = zlib.decompress(data[meta_end:], -zlib.MAX_WBITS)
    inflated_header = inflated.rindex(b"\xe0\x7f\x10\x00")  # where Pixel Data starts in the inflated dataset
    assert path.stat().st_size < 3000 < inflated_header  # the condition that used to reject it
    src = source(tmp_path)
    assert read_identity(src, path.name).sop_uid == pydicom.dcmread(path).SOPInstanceUID
    inst = read_instance(src, path.name)
    np.testing.assert_array_equal(read_pixels(src, inst), pixels[None])
    np.testing.assert_array_equal(read_pixels(src, replace(inst, pixel_offset=None)), pixels[None])


@pytest.mark.parametrize("source", [LocalSource, _RemoteLike])
def test_a_cut_deflated_file_is_still_truncated(tmp_path: Path, source: type[LocalSource]) -> None:
    path = tmp_path / "dark.dcm"
    _dark_deflated(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the deflate stream cut: the dataset inflates short
    assert _reject(source(tmp_path), path.name) in (Reason.TRUNCATED, Reason.UNREADABLE)
