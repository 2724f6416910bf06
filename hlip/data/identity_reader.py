"""The header pass's fast path: where a well-formed file belongs, read from its bytes without pydicom.

The ingest header pass reads every file once to group the files into studies, and the study pass then reads each
file in full. With pydicom the header pass cost 0.7 ms a file in one process (33 of the 200 s of the demo's ingest
stage), almost all of it building a `Dataset` of every element to read five values. `read_fields` walks the elements
of a file as stored (tag, VR, length; values skipped, sequences of undefined length walked to their delimiter) and
keeps the handful the header pass needs: the three UIDs, the SOP class, the accession number and the image
attributes `check_limits` bounds (0.27 ms a file: `benchmarks/bench_ingest.py CORPUS --header-pass`).

It answers only when the answer is certain, and returns None otherwise, so that the file takes pydicom's path,
which decides and names the reason exactly as before: no preamble, a command group, implicit VR or big endian, a
private transfer syntax, a DICOMDIR record sequence, a VR outside the standard's, tags out of order, an element or
item that runs past the end of the file (or of the bytes read), an undefined length anywhere but a sequence, a wanted
value that is not plain printable ASCII or holds several values or has another VR than the standard's, an empty UID,
a character set other than the ones that decode ASCII unchanged, a Deflated stream that does not inflate. Whatever it
returns, pydicom would have parsed the same way: `tests/unit/hlip/data/test_identity_reader.py` reads every file
pydicom ships, the encodings the demo corpus writes and 2,420 truncated and corrupted variants both ways and requires
the same identity or the same rejection (a wider run of about 75,000 variants found three disagreements, each fixed
and kept there as a case).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom.uid
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

_HEAD_BYTES = 256 * 1024  # a native file's header almost always ends before this; a longer one takes pydicom's path
_PREAMBLE = 128
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # where pydicom's `stop_before_pixels` stops
_MAX_DEPTH = 32
# Explicit VR: these carry 2 reserved bytes and a 4-byte length, the others a 2-byte length (PS3.5 7.1.2); pydicom's
# own sets, so that both readers split elements alike
_LONG_VRS = frozenset(str(vr).encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_SHORT_VRS = frozenset(str(vr).encode("ascii") for vr in EXPLICIT_VR_LENGTH_16)
_META_VRS = frozenset({b"UL", b"OB", b"UI", b"SH", b"AE", b"UR"})  # PS3.10 7.1: what the file meta group holds
_DEFLATED = str(pydicom.uid.DeflatedExplicitVRLittleEndian)
_OTHER_ENCODINGS = frozenset({str(pydicom.uid.ImplicitVRLittleEndian), str(pydicom.uid.ExplicitVRBigEndian)}) | {
    str(uid) for uid in pydicom.uid.PrivateTransferSyntaxes
}
# Character sets under which printable ASCII decodes to itself (a file in another takes pydicom's path)
_ASCII_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144",
                             "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203",
                             "ISO_IR 192"})  # fmt: skip

_TRANSFER_SYNTAX, _MEDIA_SOP_CLASS = 0x00020010, 0x00020002
_CHARSET, _SOP_CLASS, _SOP, _ACCESSION = 0x00080005, 0x00080016, 0x00080018, 0x00080050
_STUDY, _SERIES, _DIRECTORY_RECORDS = 0x0020000D, 0x0020000E, 0x00041220
_SAMPLES, _FRAMES, _ROWS, _COLUMNS, _BITS = 0x00280002, 0x00280008, 0x00280010, 0x00280011, 0x00280100
# The VR each kept attribute has in the standard: a file that says otherwise takes pydicom's path
_KEPT_VR = {_CHARSET: b"CS", _SOP_CLASS: b"UI", _SOP: b"UI", _ACCESSION: b"SH", _STUDY: b"UI", _SERIES: b"UI",
            _SAMPLES: b"US", _FRAMES: b"IS", _ROWS: b"US", _COLUMNS: b"US", _BITS: b"US"}  # fmt: skip
_UID = re.compile(rb"[0-9.]+[\x00 ]*")
_TEXT = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")  # printable ASCII without the value delimiter (backslash)
_INTEGER = re.compile(rb" *[+-]?[0-9]{1,9} *")

_TAG_VR = struct.Struct("<HH2s")
_TAG = struct.Struct("<HH")
_SHORT_LENGTH = struct.Struct("<H")
_LONG_LENGTH = struct.Struct("<L")
_ITEM_HEADER = struct.Struct("<HHL")


@dataclass(frozen=True)
class HeaderFields:
    """What the header pass needs from one file, as pydicom would have converted it.

    Attributes:
        sop_class: SOPClassUID, else the file meta's MediaStorageSOPClassUID ("" when neither).
        study_uid: StudyInstanceUID.
        series_uid: SeriesInstanceUID.
        sop_uid: SOPInstanceUID.
        accession: AccessionNumber, stripped ("" when absent).
        frames: NumberOfFrames (1 when absent).
        image: (Rows, Columns, SamplesPerPixel, BitsAllocated) with the defaults `check_header_limits` gives absent
            ones (0, 0, 1, 16), or None when neither Rows nor Columns is present (not an image).
    """

    sop_class: str
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    frames: int
    image: tuple[int, int, int, int] | None


def read_fields(path: Path, size: int) -> HeaderFields | None:
    """The header pass's fields of a local file, or None where pydicom must decide (see the module docstring).

    Args:
        path: The file.
        size: Its size in bytes as listed (elements are checked against it, as `hlip.data.dicom` checks pydicom's).
    """
    want = min(size, _HEAD_BYTES)
    try:
        with open(path, "rb") as fh:
            head = fh.read(want)
            if len(head) != want or size < _PREAMBLE + 4 or head[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
                return None
            meta: dict[int, tuple[bytes, bytes]] = {}
            start = _read_meta(head, _PREAMBLE + 4, meta)
            syntax = _uid(*meta.get(_TRANSFER_SYNTAX, (b"UI", b""))) if start is not None else None
            if start is None or not syntax or syntax in _OTHER_ENCODINGS:
                return None
            if syntax == _DEFLATED:  # as pydicom reads it: the rest of the file inflated whole
                tail = fh.read()
                if len(head) + len(tail) != size:
                    return None
                data = zlib.decompress(head[start:] + tail, -zlib.MAX_WBITS)
                return _fields(data, 0, len(data), meta)
    except (OSError, zlib.error):
        return None
    return _fields(head, start, size, meta)


def _read_meta(data: bytes, pos: int, meta: dict[int, tuple[bytes, bytes]]) -> int | None:
    """The file meta group (group 0002, explicit VR little endian): its values by tag, and where the dataset starts."""
    while pos + 8 <= len(data):
        group, element, vr = _TAG_VR.unpack_from(data, pos)
        if group != 0x0002:
            return pos if meta and group != 0x0000 else None  # pydicom reads a group-0000 command set as implicit VR
        span = _span(data, pos, vr, len(data))
        if span is None or span[1] < 0 or vr not in _META_VRS or (vr == b"UL" and span[1] - span[0] != 4):
            return None  # pydicom converts the group length (and the first element): a number must fit its VR
        meta[group << 16 | element] = (vr, data[span[0] : span[1]])
        pos = span[1]
    return None


def _span(data: bytes, pos: int, vr: bytes, end: int) -> tuple[int, int] | None:
    """Where the value of the element at `pos` starts and ends (end -1: undefined length), or None when the element
    is not well formed: an unknown VR, or a value running past `end` or past the bytes at hand."""
    if vr in _SHORT_VRS:
        value = pos + 8
        stop = value + int(_SHORT_LENGTH.unpack_from(data, pos + 6)[0])
    elif vr in _LONG_VRS:
        value = pos + 12
        if value > min(end, len(data)):
            return None
        length = int(_LONG_LENGTH.unpack_from(data, pos + 8)[0])
        if length == _UNDEFINED:
            return value, -1
        stop = value + length
    else:
        return None
    return (value, stop) if stop <= end and stop <= len(data) else None


def _element_end(data: bytes, pos: int, end: int, depth: int) -> tuple[int, bytes, int] | None:
    """(tag, VR, where the element ends) of the element at `pos`; None when it is not well formed."""
    group, element, vr = _TAG_VR.unpack_from(data, pos)
    stop = _value_end(data, pos, vr, end, depth)
    return None if stop is None else (group << 16 | element, vr, stop)


def _value_end(data: bytes, pos: int, vr: bytes, end: int, depth: int) -> int | None:
    """Where the element at `pos` (of VR `vr`) ends; a sequence of undefined length is walked to its delimiter
    (pydicom parses one when it reads the header); None when anything is not well formed."""
    span = _span(data, pos, vr, end)
    if span is None:
        return None
    if span[1] < 0:
        return _sequence_end(data, span[0], end, depth) if vr == b"SQ" else None
    return span[1]


def _fields(data: bytes, pos: int, end: int, meta: dict[int, tuple[bytes, bytes]]) -> HeaderFields | None:
    kept: dict[int, bytes] = {}
    last = -1
    while pos < end:
        if pos + 8 > min(end, len(data)):
            return None  # pydicom stops quietly at a partial element header: let it decide
        group, element, vr = _TAG_VR.unpack_from(data, pos)
        tag = group << 16 | element
        if tag in _PIXEL_TAGS:  # pydicom reads the element's whole header (a long VR's 4-byte length too) first
            if vr in _LONG_VRS and pos + 12 > min(end, len(data)):
                return None
            break
        if tag <= last or group in (0x0000, 0x0002, 0xFFFE) or tag == _DIRECTORY_RECORDS:
            return None  # out of order, a command or meta element, a stray delimiter; a DICOMDIR
        stop = _value_end(data, pos, vr, end, 0)
        if stop is None:
            return None
        if tag == _CHARSET and not _plain_charset(data[pos + 8 : stop]):
            return None
        if tag in _KEPT_VR:
            if vr != _KEPT_VR[tag]:
                return None
            kept[tag] = data[pos + 8 : stop]
        last, pos = tag, stop
    return _converted(kept, meta) if last >= 0 else None


def _sequence_end(data: bytes, pos: int, end: int, depth: int) -> int | None:
    """Where a sequence of undefined length ends (after its delimiter), walking each item's elements."""
    if depth >= _MAX_DEPTH:
        return None
    while pos + 8 <= min(end, len(data)):
        group, element, length = _ITEM_HEADER.unpack_from(data, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQUENCE_END:
            return pos if length == 0 else None
        if tag != _ITEM:
            return None
        if length == _UNDEFINED:
            item_end = _item_end(data, pos, end, None, depth + 1)
        else:  # pydicom parses a defined-length item's elements too: they must fill it exactly
            item_end = _item_end(data, pos, min(end, pos + length), pos + length, depth + 1)
        if item_end is None:
            return None
        pos = item_end
    return None


def _item_end(data: bytes, pos: int, end: int, length_end: int | None, depth: int) -> int | None:
    """Where an item ends: at `length_end` for a defined length, after its delimiter for an undefined one."""
    while pos + 8 <= min(end, len(data)):
        if pos == length_end:
            return pos
        group, element = _TAG.unpack_from(data, pos)
        if (group, element) == (0xFFFE, 0xE00D) and length_end is None:
            return pos + 8 if _LONG_LENGTH.unpack_from(data, pos + 4)[0] == 0 else None
        if group == 0xFFFE:
            return None
        walked = _element_end(data, pos, end, depth)
        if walked is None or (walked[0] == _CHARSET and not _plain_charset(data[pos + 8 : walked[2]])):
            return None  # pydicom converts an item's character set as it parses the item
        pos = walked[2]
    return pos if pos == length_end else None


def _converted(kept: dict[int, bytes], meta: dict[int, tuple[bytes, bytes]]) -> HeaderFields | None:
    uids = [_uid(b"UI", kept.get(tag, b"")) for tag in (_STUDY, _SERIES, _SOP)]
    sop_class = _uid(b"UI", kept.get(_SOP_CLASS, b""))
    if sop_class == "" and _MEDIA_SOP_CLASS in meta:
        sop_class = _uid(*meta[_MEDIA_SOP_CLASS])
    accession = kept.get(_ACCESSION, b"")
    if not all(uids) or sop_class is None or not _TEXT.fullmatch(accession):
        return None  # a missing or odd UID, an accession number that is not plain ASCII: pydicom's path decides
    numbers: dict[int, int] = {}
    for tag in (_SAMPLES, _ROWS, _COLUMNS, _BITS):
        if tag in kept:
            if len(kept[tag]) != 2:
                return None
            numbers[tag] = int(_SHORT_LENGTH.unpack(kept[tag])[0])
    frames = 1
    if _FRAMES in kept:
        if not _INTEGER.fullmatch(kept[_FRAMES]):
            return None
        frames = int(kept[_FRAMES])
    image = None
    if _ROWS in numbers or _COLUMNS in numbers:
        image = (numbers.get(_ROWS, 0), numbers.get(_COLUMNS, 0), numbers.get(_SAMPLES, 1), numbers.get(_BITS, 16))
    return HeaderFields(
        sop_class=sop_class,
        study_uid=str(uids[0]),
        series_uid=str(uids[1]),
        sop_uid=str(uids[2]),
        accession=accession.decode("ascii").rstrip("\x00 ").strip(),
        frames=frames,
        image=image,
    )


def _plain_charset(value: bytes) -> bool:
    """Whether a SpecificCharacterSet value is one single-byte or UTF-8 set, in which printable ASCII is itself (others,
    and damaged values, which pydicom may reject, take its path)."""
    return bool(_TEXT.fullmatch(value)) and value.strip(b"\x00 ").decode("ascii") in _ASCII_CHARSETS


def _uid(vr: bytes, value: bytes) -> str | None:
    """A UI value as pydicom converts it ("" when empty), or None when it is not one plain UID."""
    if vr != b"UI":
        return None
    if not value.strip(b"\x00 "):
        return ""
    return value.decode("ascii").rstrip("\x00 ") if _UID.fullmatch(value) else None
