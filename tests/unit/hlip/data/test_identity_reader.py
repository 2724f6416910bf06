"""The header pass's byte-level reader against pydicom: the same identity or the same rejection, on files nobody here
wrote (every file pydicom ships), on the encodings the demo corpus writes, and on truncated and corrupted variants."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from hlip.data import dicom
from hlip.data.identity_reader import read_fields
from hlip.data.quarantine import RejectedError
from hlip.data.source import LocalSource

from .conftest import DeflatedExplicitVRLittleEndian, RLELossless

Writer = Callable[..., list[Path]]
VRS = {str(vr).encode() for vr in EXPLICIT_VR_LENGTH_16 | EXPLICIT_VR_LENGTH_32}
PYDICOM_FILES = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]


def _outcome(src: LocalSource, path: str, fast: bool) -> Any:
    """What `read_identity` gives for a file, with the byte-level reader on or off: an identity, or the rejection."""
    reader = read_fields if fast else (lambda *_: None)
    with mock.patch.object(dicom, "read_fields", reader):
        try:
            return dicom.read_identity(src, path, (src.root / path).stat().st_size)
        except RejectedError as exc:
            return exc.reason, exc.message
        except Exception as exc:  # not expected on either path: compared like any other outcome
            return "raised", type(exc).__name__


def _both(src: LocalSource, path: str) -> tuple[Any, Any]:
    return _outcome(src, path, True), _outcome(src, path, False)


def _shipped() -> list[Path]:
    return sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file())


def test_every_file_pydicom_ships_reads_the_same_both_ways() -> None:
    src = LocalSource(PYDICOM_FILES)
    fast = 0
    for path in _shipped():
        rel = path.relative_to(PYDICOM_FILES).as_posix()
        with_reader, without = _both(src, rel)
        assert with_reader == without, rel
        fast += read_fields(path, path.stat().st_size) is not None
    # most of them are read without pydicom (explicit VR little endian, Deflated, JPEG, JPEG 2000, RLE); the rest
    # (implicit VR, big endian, DICOMDIRs, odd files) take pydicom's path
    assert fast >= 120, fast


@pytest.mark.parametrize("syntax", [None, DeflatedExplicitVRLittleEndian, RLELossless])
def test_the_demo_corpus_encodings_take_the_fast_path(tmp_path: Path, write_series: Writer, syntax: str | None) -> None:
    paths = write_series(tmp_path, n=3, **({"transfer_syntax": syntax} if syntax else {}))
    src = LocalSource(tmp_path)
    for path in paths:
        fields = read_fields(path, path.stat().st_size)
        assert fields is not None
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert (fields.study_uid, fields.series_uid, fields.sop_uid) == (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
        )
        assert fields.image == (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated)
        with_reader, without = _both(src, path.name)
        assert with_reader == without


def test_sequences_of_undefined_length_are_walked_to_their_end(tmp_path: Path, write_series: Writer) -> None:
    ds = pydicom.dcmread(write_series(tmp_path / "s", n=1)[0])
    item, nested = Dataset(), Dataset()
    nested.CodeValue, nested.CodingSchemeDesignator = "T-A0100", "SRT"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.AnatomicRegionSequence = Sequence([nested])  # a sequence inside an item
    ds.ReferencedImageSequence = Sequence([item, Dataset()])  # (0008,1140): before the UIDs of group 0020
    for holder, keyword in ((ds, "ReferencedImageSequence"), (item, "AnatomicRegionSequence")):
        holder[keyword].is_undefined_length = True
        for each in holder[keyword].value:
            each.is_undefined_length_sequence_item = True
    ds.StudyInstanceUID = "1.2.826.0.1.99"
    ds.save_as(tmp_path / "undefined", enforce_file_format=True)
    raw = (tmp_path / "undefined").read_bytes()
    assert b"\xfe\xff\xdd\xe0" in raw  # a sequence delimitation item: the lengths are undefined
    fields = read_fields(tmp_path / "undefined", len(raw))
    assert fields is not None
    assert fields.study_uid == "1.2.826.0.1.99"
    # cut inside the sequence, and its delimiter removed: pydicom decides (and both paths agree)
    (tmp_path / "cut").write_bytes(raw[: raw.index(b"\xfe\xff\xdd\xe0") + 2])
    (tmp_path / "no_delimiter").write_bytes(raw.replace(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"", 1))
    src = LocalSource(tmp_path)
    for name in ("cut", "no_delimiter"):
        assert read_fields(tmp_path / name, (tmp_path / name).stat().st_size) is None
        with_reader, without = _both(src, name)
        assert with_reader == without, name


def test_values_it_cannot_vouch_for_go_to_pydicom(tmp_path: Path, write_series: Writer) -> None:
    base = pydicom.dcmread(write_series(tmp_path / "s", n=1)[0])
    variants: dict[str, Callable[[Dataset], None]] = {
        "two_uids": lambda d: setattr(d, "SeriesInstanceUID", ["1.2.3", "1.2.4"]),
        "letters_in_uid": lambda d: setattr(d, "SOPInstanceUID", "1.2.abc"),
        "no_study_uid": lambda d: delattr(d, "StudyInstanceUID"),
        "latin1_accession": lambda d: (setattr(d, "SpecificCharacterSet", "ISO_IR 100"),
                                       setattr(d, "AccessionNumber", "ACC\xe9")),
        "japanese_charset": lambda d: (setattr(d, "SpecificCharacterSet", "ISO_IR 13"),
                                       setattr(d, "AccessionNumber", "A1")),
        "frames_not_a_number": lambda d: d.add_new(0x00280008, "IS", "17"),  # made "x1" below, byte for byte
    }  # fmt: skip
    src = LocalSource(tmp_path)
    for name, change in variants.items():
        ds = pydicom.dcmread(write_series(tmp_path / "s", n=1)[0])
        change(ds)
        ds.save_as(tmp_path / name, enforce_file_format=True)
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(raw.replace(b"(\x00\x08\x00IS\x02\x0017", b"(\x00\x08\x00IS\x02\x00x1"))
        assert read_fields(tmp_path / name, (tmp_path / name).stat().st_size) is None, name
        with_reader, without = _both(src, name)
        assert with_reader == without, name
    # plain values in a character set that decodes ASCII as itself stay on the fast path, stripped as pydicom does
    base.SpecificCharacterSet, base.AccessionNumber = "ISO_IR 192", " ACC 12 "
    base.save_as(tmp_path / "utf8", enforce_file_format=True)
    fields = read_fields(tmp_path / "utf8", (tmp_path / "utf8").stat().st_size)
    assert fields is not None
    assert fields.accession == "ACC 12"
    with_reader, without = _both(src, "utf8")
    assert with_reader == without


def _header_end(path: Path) -> int:
    """Where the pixels start (or the file ends): mutations aim at the header, where the reader's decisions are."""
    raw = path.read_bytes()
    marks = [raw.find(tag) for tag in (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00") if raw.find(tag) > 0]
    return min(marks) + 12 if marks else len(raw)


def test_truncated_and_corrupted_files_read_the_same_both_ways(tmp_path: Path) -> None:
    """Mutations of every small fast-path file pydicom ships: cut at offsets through the header, and bytes of the
    header overwritten, anywhere and in element headers (tags, VRs, lengths). The reader either steps aside or agrees
    with pydicom. (A wider run of the same, 75K variants of pydicom's files and of the demo corpus's, found three
    disagreements, each fixed and kept here as a case: a damaged character set, the file meta's group length, a long
    VR's length cut after the Pixel Data tag.)"""
    rng = random.Random(0)
    sources = [p for p in _shipped() if p.stat().st_size < 64 * 1024 and read_fields(p, p.stat().st_size)]
    assert len(sources) >= 40
    src = LocalSource(tmp_path)
    checked = fast = 0
    for n, path in enumerate(sources):
        raw = path.read_bytes()
        end = min(_header_end(path), len(raw))
        variants = [raw[: rng.randrange(1, end)] for _ in range(6)]
        for _ in range(7):
            at = rng.randrange(128, end)
            variants.append(raw[:at] + bytes([rng.choice((0x00, 0xFF, rng.randrange(256)))]) + raw[at + 1 :])
        heads = [i for i in range(132, end - 8) if raw[i : i + 2] in VRS]  # element headers: tag, VR, length
        for _ in range(7):
            at = rng.choice(heads) + rng.randrange(-4, 8)
            variants.append(raw[:at] + bytes([rng.choice((0x00, 0xFF, 0x01, rng.randrange(256)))]) + raw[at + 1 :])
        for k, data in enumerate(variants):
            name = f"{n}_{k}"
            (tmp_path / name).write_bytes(data)
            with_reader, without = _both(src, name)
            assert with_reader == without, (path.name, k)
            checked += 1
            fast += read_fields(tmp_path / name, len(data)) is not None
    assert checked == 20 * len(sources)
    assert 0 < fast < checked  # the mutations both keep and leave the fast path


def test_the_disagreements_a_wider_fuzz_found_stay_fixed(tmp_path: Path, write_series: Writer) -> None:
    """Three files pydicom rejects that an earlier form of the reader accepted: each must now take pydicom's path."""
    ds = pydicom.dcmread(write_series(tmp_path / "s", n=1)[0])
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.save_as(tmp_path / "good", enforce_file_format=True)
    raw = (tmp_path / "good").read_bytes()
    assert raw[132:138] == b"\x02\x00\x00\x00UL"  # the file meta group length comes first, then (0002,0001)
    assert raw[144:150] == b"\x02\x00\x01\x00OB"
    pixel = raw.index(b"\xe0\x7f\x10\x00")
    assert raw[pixel + 4 : pixel + 6] in (b"OB", b"OW")
    cases = {
        "damaged_charset": raw.replace(b"ISO_IR 192", b"ISO\xff\x00R 192"),  # pydicom: ValueError converting it
        "meta_length_of_18": raw[:138] + b"\x12\x00" + raw[140:],  # its UL swallows (0002,0001), 14 bytes, whole
        "cut_in_pixel_header": raw[: pixel + 8],  # Pixel Data's 4-byte length missing: pydicom reads it before it stops
    }
    src = LocalSource(tmp_path)
    assert read_fields(tmp_path / "good", len(raw)) is not None
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert read_fields(tmp_path / name, len(data)) is None, name
        with_reader, without = _both(src, name)
        assert isinstance(without, tuple), name  # rejected by pydicom's path
        assert with_reader == without, name
