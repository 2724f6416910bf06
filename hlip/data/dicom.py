"""Safe DICOM reading: a header pass that never loads pixels, and pixel reading that maps every failure to a
quarantine reason instead of an exception that would stop the run.

`read_instance` parses one file with `stop_before_pixels` into an `Instance`: the handful of attributes grouping,
classification and volume building need, one `FrameInfo` per frame (enhanced multi-frame files carry per-frame
position, orientation, rescale and b-value in functional groups), and the header itself (kept in memory for
de-identified export and report scrubbing, never written as is).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from hlip.data.identity_reader import read_fields
from hlip.data.quarantine import Reason, RejectedError
from hlip.data.source import Source

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
HEAD_BYTES = 128 * 1024  # enough for almost every header; remote reads fetch the rest only when needed
# Values longer than this are not read while parsing a header: an element that claims 4 GiB must be caught by the
# length check against the file size, not by an allocation of its claimed length.
DEFER_BYTES = 1024 * 1024
# Sanity limits checked on the header before anything is built or decoded (a file beyond them is quarantined as
# implausible_header): frames per file (large enhanced MR/CT files hold a few thousand), decoded bytes per file,
# and how much larger than the file its decoded pixels may be (lossless codecs reach 3-20x, constant images more).
MAX_FRAMES = 65_536
MAX_DECODED_BYTES = 4 * 1024**3
MAX_EXPANSION = 5_000
_BITS_ALLOCATED = (1, 8, 16, 32, 64)
_NATIVE_LITTLE_ENDIAN = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
# The Image Pixel attributes pydicom's decoders read (`pydicom.pixels.utils.as_pixel_options`)
_IMAGE_PIXEL_TAGS = frozenset({0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011, 0x00280100,
                               0x00280101, 0x00280103})  # fmt: skip
_DEFLATED_UID = str(DeflatedExplicitVRLittleEndian).encode("ascii")  # in the file meta group, which is never deflated
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
# Value representations whose conversion is a plain text decode (with replacement, read-time validation off) and
# cannot fail, so the completeness check leaves them lazy (tests/unit/hlip/data/test_dicom.py converts arbitrary
# bytes in every one under several character sets). Not here: PN (its component split can raise under ISO 2022),
# UN (converted to the dictionary's VR), numbers and sequences.
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "OB", "OW"})

# pydicom validates each value as it converts it and, for one it finds invalid, warns *and logs* a message quoting
# the value (a UID, a birth date, a name), whatever warnings filter is active. Ingestion acts on what it reads
# (a quarantine reason), never on those messages, and identifiers must never reach a log: read-time validation is
# off in every process that reads DICOM through this module.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@dataclass(frozen=True)
class FrameInfo:
    """Geometry and intensity mapping of one frame (a slice).

    Attributes:
        frame: Index in a multi-frame file, or None for a single-frame file.
        position: ImagePositionPatient (mm, LPS), or None when missing.
        orientation: ImageOrientationPatient (row then column direction cosines), or None.
        spacing: PixelSpacing (row spacing, column spacing) in mm, or None.
        slope: RescaleSlope.
        intercept: RescaleIntercept.
        b_value: Diffusion b-value (s/mm2) when the header gives one.
        echo: Echo number, for multi-echo series that must be split.
    """

    frame: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    b_value: float | None = None
    echo: int | None = None


@dataclass(frozen=True)
class Instance:
    """The header of one file, reduced to what ingestion needs.

    Attributes:
        path: Relative source path.
        sop_uid: SOPInstanceUID (raw: in memory only, hashed before anything is written).
        series_uid: SeriesInstanceUID (raw).
        study_uid: StudyInstanceUID (raw).
        sop_class: SOPClassUID.
        transfer_syntax: TransferSyntaxUID.
        modality: Modality.
        rows: Rows.
        columns: Columns.
        samples: SamplesPerPixel.
        photometric: PhotometricInterpretation.
        frames: One `FrameInfo` per frame.
        header: The parsed header without pixels.
        pixel_offset: Where the header read stopped (the start of the element after the header, normally Pixel
            Data), so that `read_pixels` can read the pixels from there without parsing the file again: an offset in
            the file for a local native little-endian file, in the inflated dataset the header keeps in memory
            (`header.buffer`) for a Deflated one; None otherwise.
    """

    path: str
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str
    transfer_syntax: str
    modality: str
    rows: int
    columns: int
    samples: int
    photometric: str
    frames: tuple[FrameInfo, ...]
    header: Dataset
    pixel_offset: int | None = None

    @property
    def image_type(self) -> tuple[str, ...]:
        """ImageType values, upper case (for enhanced files FrameType of the first frame as a fallback)."""
        return tuple(str(v).upper() for v in _multi(self.header.get("ImageType")))


@dataclass(frozen=True)
class Identity:
    """Where one file belongs, from a header read without forcing every value (the ingest header pass).

    Attributes:
        path: Relative source path.
        sop_uid: SOPInstanceUID (raw).
        series_uid: SeriesInstanceUID (raw).
        study_uid: StudyInstanceUID (raw).
        accession: AccessionNumber (raw, stripped; "" when absent).
    """

    path: str
    sop_uid: str
    series_uid: str
    study_uid: str
    accession: str


def read_identity(source: Source, path: str, size: int | None = None) -> Identity:
    """Read just enough of one file's header to place it in a study.

    The checks that need no value conversion run here too (empty, not DICOM, cut inside the header, DICOMDIR,
    missing UIDs, absurd image attributes), so most bad files are rejected in the header pass; a file whose other
    values cannot be decoded is rejected, with the same reason, when its study reads it (`read_instance`). Forcing
    every value costs about twice the parse, and the study pass does it anyway. A well-formed local file is read
    without pydicom (`hlip.data.identity_reader`: the same answer, a fraction of the cost); every other file, and
    any file that reader is not certain about, is parsed by pydicom as before.

    Raises:
        RejectedError: As `read_instance`, for the checks above.
    """
    local = source.local_path(path)
    fields = None
    if local is not None:
        size = _local_size(source, path) if size is None else size
        fields = read_fields(local, size) if size is not None else None
    if fields is None:
        ds, _, uids, _ = _identified(source, path, size, complete=False)
        accession = str(ds.get("AccessionNumber", "") or "").strip()
        return Identity(path, uids["SOPInstanceUID"], uids["SeriesInstanceUID"], uids["StudyInstanceUID"], accession)
    _check_identity(fields.sop_class, False, fields.study_uid, fields.series_uid, fields.sop_uid)
    check_limits(fields.frames, fields.image, size)
    return Identity(path, fields.sop_uid, fields.series_uid, fields.study_uid, fields.accession)


def read_instance(source: Source, path: str, size: int | None = None) -> Instance:
    """Read one file's header.

    Args:
        source: The source holding the file.
        path: Relative path of the file.
        size: Its size when already known (zero-byte files are rejected without a read).

    Returns:
        The instance.

    Raises:
        RejectedError: With a file-level reason for empty, non-DICOM, truncated or unreadable files, DICOMDIRs and
            files without the UIDs that place them in a study and series.
    """
    ds, sop_class, uids, pixel_offset = _identified(source, path, size, complete=True)
    return Instance(
        path=path,
        sop_uid=uids["SOPInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        sop_class=sop_class,
        transfer_syntax=str(getattr(ds.get("file_meta", Dataset()), "TransferSyntaxUID", "") or ""),
        modality=str(ds.get("Modality", "") or "").upper(),
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        samples=_int(ds.get("SamplesPerPixel"), 1),
        photometric=str(ds.get("PhotometricInterpretation", "") or "").upper(),
        frames=frame_infos(ds),
        header=ds,
        pixel_offset=pixel_offset,
    )


def _identified(
    source: Source, path: str, size: int | None, complete: bool
) -> tuple[Dataset, str, dict[str, str], int | None]:
    """The parsed header, its SOP class, its three UIDs and where the header ends (`Instance.pixel_offset`), after
    the checks every header read makes."""
    if size == 0:
        raise RejectedError(Reason.EMPTY_FILE, "zero-byte file")
    ds, pixel_offset = _read_header(source, path, size, complete)
    sop_class = str(ds.get("SOPClassUID", "") or getattr(ds.get("file_meta", Dataset()), "MediaStorageSOPClassUID", ""))
    uids = {k: str(ds.get(k, "") or "").strip() for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    _check_identity(sop_class, "DirectoryRecordSequence" in ds, *uids.values())
    check_header_limits(ds, size if size is not None else _local_size(source, path))
    return ds, sop_class, uids, pixel_offset


def _check_identity(sop_class: str, directory_records: bool, study_uid: str, series_uid: str, sop_uid: str) -> None:
    """Reject a DICOMDIR, and a file without the UIDs that place it in a study and series."""
    if sop_class == DICOMDIR_CLASS or directory_records:
        raise RejectedError(Reason.DICOMDIR, "DICOMDIR media directory, not an image")
    uids = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, "SOPInstanceUID": sop_uid}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise RejectedError(Reason.MISSING_UID, f"no {', '.join(missing)}: cannot place the file in a study/series")


def _read_header(source: Source, path: str, size: int | None, complete: bool = True) -> tuple[Dataset, int | None]:
    local = source.local_path(path)
    try:
        if local is not None:
            size = local.stat().st_size if size is None else size
            with open(local, "rb") as fh:
                stopped = [0]

                def read(force: bool) -> Dataset:
                    fh.seek(0)
                    ds = pydicom.dcmread(fh, stop_before_pixels=True, force=force, defer_size=DEFER_BYTES)
                    stopped[0] = fh.tell()  # pydicom rewinds to the start of the element it stopped before
                    return ds

                ds = _parse(read, size, complete)
            return ds, _pixel_offset(ds, stopped[0])
        head = source.read_bytes(path, HEAD_BYTES)
        partial = len(head) >= HEAD_BYTES
        if partial and (_DEFLATED_UID in head or not any(t in head for t in _PIXEL_TAGS)):
            # the header is longer than the head we fetched; or the file is Deflated, whose bytes are not the
            # dataset's (pixel tag bytes in them mean nothing, and the dataset inflates only from the whole stream)
            head, partial = source.read_bytes(path), False
        data = head
        total = size if size is not None else (None if partial else len(head))
        parsed = _parse(
            lambda force: pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=force), total, complete
        )
        return parsed, _pixel_offset(parsed, None)
    except RejectedError:
        raise
    except PermissionError as exc:
        raise RejectedError(Reason.UNREADABLE, "no permission to read the file") from exc
    except (EOFError, OSError) as exc:
        raise RejectedError(Reason.TRUNCATED, f"header ends early ({type(exc).__name__})") from exc
    except Exception as exc:  # any parser failure is a property of the file, not of the run
        raise RejectedError(Reason.UNREADABLE, f"header cannot be parsed ({type(exc).__name__})") from exc


def _native_little_endian(ds: Dataset) -> bool:
    """Whether the file's pixels, if any, are stored uncompressed little endian in the file as read (Deflate
    inflates the whole dataset first, so offsets in the file mean nothing there)."""
    syntax = str(getattr(ds.get("file_meta", Dataset()), "TransferSyntaxUID", "") or "")
    implicit, little = ds.original_encoding
    return syntax in _NATIVE_LITTLE_ENDIAN and little is True and implicit == (syntax == ImplicitVRLittleEndian)


def _inflated(ds: Dataset) -> DicomBytesIO | None:
    """The inflated dataset a Deflated file's header was parsed from (pydicom inflates the whole dataset, pixels
    included, before parsing it, and the header keeps it as `buffer`); None for every other file."""
    syntax = str(getattr(ds.get("file_meta", Dataset()), "TransferSyntaxUID", "") or "")
    buffer = getattr(ds, "buffer", None)
    if syntax != DeflatedExplicitVRLittleEndian or not isinstance(buffer, DicomBytesIO):
        return None
    return buffer if ds.original_encoding == (False, True) else None


def _pixel_offset(ds: Dataset, file_offset: int | None) -> int | None:
    """`Instance.pixel_offset`: where the header read stopped, in the inflated dataset (Deflated) or in the file
    (`file_offset`, a local native little-endian file); None where pixels need a parse of their own."""
    inflated = _inflated(ds)
    if inflated is not None:
        return int(inflated.tell())  # pydicom rewinds to the start of the element it stopped before
    return file_offset if file_offset is not None and _native_little_endian(ds) else None


def _parse(read: Any, size: int | None, complete: bool) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every odd VR; the outcome is what counts
        try:
            return _check_complete(read(False), size, complete)
        except InvalidDicomError:
            pass
        # A raw dataset without the 128-byte preamble and 'DICM' (old exports): accept it only when it looks like
        # an image instance, so that text or binary junk parsed by force is never taken for DICOM.
        try:
            ds = _check_complete(read(True), size, complete)
        except Exception as exc:
            raise RejectedError(Reason.NOT_DICOM, "no DICOM preamble and not parseable as a raw dataset") from exc
        if not all(str(ds.get(k, "") or "").strip() for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")):
            raise RejectedError(Reason.NOT_DICOM, "no DICOM preamble and no instance UIDs: not a DICOM file")
        return ds


def _check_complete(ds: Dataset, size: int | None, force_values: bool) -> Dataset:
    # pydicom returns a partial dataset for a file cut inside the header instead of raising: an element whose
    # declared length runs past the end of the file gives the cut away. A Deflated file's offsets count in its
    # inflated dataset, which is longer than the file (a mostly dark slice: 1.5 KB of file, 24 KB inflated): compared
    # with the file's size, valid files were rejected as truncated; a cut one inflates to less and is still caught.
    inflated = _inflated(ds)
    if inflated is not None:
        size = _stream_size(inflated)
    if size is not None:
        for raw in ds._dict.values():
            length, tell = getattr(raw, "length", 0), getattr(raw, "value_tell", None)
            if tell is not None and length != 0xFFFFFFFF and tell + length > size:
                raise EOFError("element runs past the end of the file")
    # converting the top-level values now surfaces damage here, not mid-study (a bad number, name or sequence would
    # fail the study that later reads it); plain text values cannot fail to convert, so they are left lazy
    if force_values:
        for tag, raw in ds._dict.items():
            if getattr(raw, "VR", None) not in _TEXT_VRS:
                _ = ds[tag].value
    if len(ds) == 0:
        raise InvalidDicomError("empty dataset")
    return ds


def _local_size(source: Source, path: str) -> int | None:
    local = source.local_path(path)
    try:
        return local.stat().st_size if local is not None else None
    except OSError:
        return None


def check_header_limits(ds: Dataset, size: int | None) -> None:
    """Reject a header whose image attributes are absurd, before any per-frame object or pixel buffer is made.

    Args:
        ds: The header.
        size: The file's size in bytes, when known.

    Raises:
        RejectedError: `implausible_header`, saying which value is out of bounds.
    """
    frames = _int(ds.get("NumberOfFrames"), 1)
    check_limits(frames, None, size)  # the frame count first, before any image attribute is converted
    if "Rows" in ds or "Columns" in ds:  # else not an image (SR, dose report): classification decides about it
        rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
        samples, bits = _int(ds.get("SamplesPerPixel"), 1), _int(ds.get("BitsAllocated"), 16)
        check_limits(frames, (rows, columns, samples, bits), size)


def check_limits(frames: int, image: tuple[int, int, int, int] | None, size: int | None) -> None:
    """`check_header_limits` on values already read: the frame count, and (Rows, Columns, SamplesPerPixel,
    BitsAllocated) of an image (None: not an image)."""
    if not 0 <= frames <= MAX_FRAMES:  # 0 is read as 1 frame, as before
        raise RejectedError(Reason.IMPLAUSIBLE_HEADER, f"NumberOfFrames {frames} outside 0..{MAX_FRAMES}")
    if image is None:
        return
    rows, columns, samples, bits = image
    if rows < 1 or columns < 1 or samples not in (1, 3, 4) or bits not in _BITS_ALLOCATED:
        message = f"Rows {rows}, Columns {columns}, SamplesPerPixel {samples}, BitsAllocated {bits}"
        raise RejectedError(Reason.IMPLAUSIBLE_HEADER, message)
    decoded = rows * columns * samples * max(bits, 8) // 8 * frames  # bits 1: bounded above as bytes
    if decoded > MAX_DECODED_BYTES:
        raise RejectedError(Reason.IMPLAUSIBLE_HEADER, f"{decoded} decoded bytes > {MAX_DECODED_BYTES}")
    if size is not None and decoded > max(size, 1) * MAX_EXPANSION:
        raise RejectedError(Reason.IMPLAUSIBLE_HEADER, f"{decoded} decoded bytes from a file of {size} bytes")


def frame_infos(ds: Dataset) -> tuple[FrameInfo, ...]:
    """Per-frame geometry, from functional groups for enhanced files, else from the top-level attributes.

    Raises:
        RejectedError: `implausible_header` for a frame count beyond `MAX_FRAMES` (never one object per frame of
            an absurd count).
    """
    n_frames = _int(ds.get("NumberOfFrames"), 1)
    if n_frames > MAX_FRAMES:
        raise RejectedError(Reason.IMPLAUSIBLE_HEADER, f"NumberOfFrames {n_frames} > {MAX_FRAMES}")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared_item = shared[0] if shared else Dataset()
    if per_frame:
        return tuple(_enhanced_frame(i, item, shared_item) for i, item in enumerate(per_frame))
    base = FrameInfo(
        frame=None,
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        slope=_rescale(ds.get("RescaleSlope"), 1.0),
        intercept=_rescale(ds.get("RescaleIntercept"), 0.0),
        b_value=b_value(ds),
        echo=_int(ds.get("EchoNumbers"), 0) or None,
    )
    if n_frames <= 1:
        return (base,)
    # Legacy multi-frame without functional groups: frames are stacked along the normal at SpacingBetweenSlices
    step = _float(ds.get("SpacingBetweenSlices"), 0.0) or _float(ds.get("SliceThickness"), 0.0)
    frames = []
    for i in range(n_frames):
        pos = None
        if base.position is not None and base.orientation is not None and step:
            normal = np.cross(base.orientation[:3], base.orientation[3:])
            pos = tuple(float(v) for v in np.asarray(base.position) + i * step * normal)
        frames.append(FrameInfo(i, pos, base.orientation, base.spacing, base.slope, base.intercept, base.b_value))  # type: ignore[arg-type]
    return tuple(frames)


_FRAME_KEYWORDS = (
    "PixelMeasuresSequence", "PixelValueTransformationSequence", "MRDiffusionSequence", "MREchoSequence",
    "PlanePositionSequence", "PlaneOrientationSequence", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "RescaleSlope", "RescaleIntercept", "DiffusionBValue", "EffectiveEchoTime",
)  # fmt: skip


# Looked up by tag, not keyword: each of a file's (up to thousands of) frames reads a dozen of them, and a keyword
# lookup costs several times a tag lookup.
def keyword_tags(keywords: tuple[str, ...]) -> dict[str, BaseTag]:
    """Tags of DICOM keywords, as pydicom's `BaseTag` (a lookup with one skips pydicom's `Tag()` parse); an unknown
    keyword raises (a silent tag 0 would read nothing, forever)."""
    tags = {k: tag_for_keyword(k) for k in keywords}
    unknown = sorted(k for k, tag in tags.items() if tag is None)
    if unknown:
        raise KeyError(f"not DICOM keywords: {', '.join(unknown)}")
    return {k: BaseTag(tag) for k, tag in tags.items() if tag is not None}


_T = keyword_tags(_FRAME_KEYWORDS)
_EMPTY = Dataset()  # an absent functional group (read only)


def _get(ds: Dataset, keyword: str) -> Any:
    tag = _T[keyword]
    if tag not in ds._dict:  # one dict lookup: most groups are absent from most frames
        return None
    return ds[tag].value


def _enhanced_frame(index: int, item: Dataset, shared: Dataset) -> FrameInfo:
    def group(name: str) -> Dataset:
        seq = _get(item, name) or _get(shared, name)
        return seq[0] if seq else _EMPTY

    pixel_measures = group("PixelMeasuresSequence")
    transform = group("PixelValueTransformationSequence")
    diffusion = group("MRDiffusionSequence")
    echo = _get(group("MREchoSequence"), "EffectiveEchoTime")
    return FrameInfo(
        frame=index,
        position=_floats(_get(group("PlanePositionSequence"), "ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(_get(group("PlaneOrientationSequence"), "ImageOrientationPatient"), 6),
        spacing=_floats(_get(pixel_measures, "PixelSpacing"), 2),  # type: ignore[arg-type]
        slope=_rescale(_get(transform, "RescaleSlope"), 1.0),
        intercept=_rescale(_get(transform, "RescaleIntercept"), 0.0),
        b_value=_float(_get(diffusion, "DiffusionBValue"), None),
        echo=None if echo is None else round(_float(echo, 0)),
    )


def b_value(ds: Dataset) -> float | None:
    """The diffusion b-value: the standard attribute first, then the common vendor private tags."""
    if ds.get("DiffusionBValue") is not None:
        return _float(ds.get("DiffusionBValue"), None)
    siemens = ds.get((0x0019, 0x100C))
    if siemens is not None:
        return _float(siemens, None)
    ge = ds.get((0x0043, 0x1039))  # GE: first value, sometimes offset by 1e9
    if ge is not None:
        values = _multi(ge)
        if values:
            v = _float(values[0], None)
            return None if v is None else v % 1e9
    return None


def read_pixels(source: Source, instance: Instance) -> np.ndarray:
    """Decode the pixel data of one file.

    Returns:
        The stored values, shape [frames, rows, columns] (rescale not applied yet: slope and intercept can vary
        per frame).

    Raises:
        RejectedError: With a file-level reason when the file has no pixel data, is cut short, or uses a transfer
            syntax no installed decoder handles.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = _native_pixels(source, instance)
            if array is None:
                with source.open(instance.path) as fh:
                    # deferred: a pixel element that claims more bytes than the file holds is never allocated
                    ds = pydicom.dcmread(fh, force=True, defer_size=DEFER_BYTES)
                    if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                        raise RejectedError(Reason.MISSING_PIXEL_DATA, "image instance without Pixel Data")
                    _check_pixel_length(ds, _stream_size(fh))
                    _ensure_transfer_syntax(ds)
                    array = ds.pixel_array
    except RejectedError:
        raise
    except PermissionError as exc:
        raise RejectedError(Reason.UNREADABLE, "no permission to read the file") from exc
    except Exception as exc:
        raise _pixel_problem(exc, instance) from exc
    array = np.asarray(array)
    n_frames = len(instance.frames)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] != n_frames:
        raise RejectedError(Reason.PIXEL_DECODE_ERROR, f"decoded shape {array.shape} does not fit {n_frames} frames")
    return array


def _native_pixels(source: Source, instance: Instance) -> np.ndarray | None:
    """Uncompressed pixels read from where the header read stopped, decoded by pydicom from the header's Image
    Pixel attributes: the same array as parsing the whole file again, at the cost of one seek and one read (of the
    file, or of the inflated dataset the header of a Deflated file keeps).

    None (parse the whole file instead) unless `instance.pixel_offset` is set and a defined-length Pixel Data
    element starts there.

    Raises:
        RejectedError: `truncated` when the element claims more bytes than the file (or inflated dataset) holds.
    """
    if instance.pixel_offset is None:
        return None
    implicit = instance.header.original_encoding[0]
    inflated = _inflated(instance.header)
    if inflated is not None:
        data = _pixel_value(inflated, instance.pixel_offset, implicit=False)
    else:
        local = source.local_path(instance.path)
        if local is None:
            return None
        with open(local, "rb") as fh:
            data = _pixel_value(fh, instance.pixel_offset, bool(implicit))
    if data is None:
        return None
    pixel = Dataset()
    for tag in _IMAGE_PIXEL_TAGS & instance.header._dict.keys():
        pixel[tag] = instance.header[tag]
    # what `Dataset.pixel_array` runs (`pydicom.pixels.utils.pixel_array`: the syntax's decoder on the Image Pixel
    # options, validated), on the bytes themselves: a dataset holding them would cost more than the decode
    syntax = instance.header.file_meta.TransferSyntaxUID
    options = as_pixel_options(pixel, pixel_keyword="PixelData")
    array: np.ndarray = get_decoder(syntax).as_array(data, validate=True, raw=False, **options)[0]
    return array


def _pixel_value(fh: Any, offset: int, implicit: bool) -> bytes | None:
    """The value of the defined-length Pixel Data element that starts at `offset` of a seekable stream; None when
    another element (or an undefined length) is there.

    Raises:
        RejectedError: `truncated` when the element claims more bytes than the stream holds.
    """
    size = _stream_size(fh)
    fh.seek(offset)
    head = fh.read(8 if implicit else 12)
    if head[:4] != _PIXEL_TAGS[0]:
        return None  # no Pixel Data (or float pixels): the general path decides
    if implicit:
        (length,), start = struct.unpack("<I", head[4:8]), offset + 8
    elif head[4:6] in (b"OB", b"OW") and len(head) == 12:
        (length,), start = struct.unpack("<I", head[8:12]), offset + 12
    else:
        return None
    if length == 0xFFFFFFFF:
        return None  # encapsulated fragments in a native syntax: malformed, the general path reports it
    if start + length > size:
        raise _truncated(length)
    data: bytes = fh.read(length)
    return data


def _stream_size(fh: Any) -> int:
    here = fh.tell()
    end = int(fh.seek(0, io.SEEK_END))
    fh.seek(here)
    return end


def _check_pixel_length(ds: Dataset, size: int) -> None:
    inflated = _inflated(ds)
    if inflated is not None:
        size = _stream_size(inflated)  # a Deflated file's offsets count in its inflated dataset
    for raw in ds._dict.values():
        length, tell = getattr(raw, "length", 0), getattr(raw, "value_tell", None)
        if tell is not None and length != 0xFFFFFFFF and tell + length > size:
            raise _truncated(length)


def _truncated(length: int) -> RejectedError:
    return RejectedError(Reason.TRUNCATED, f"an element claims {length} bytes past the end of the file")


def _ensure_transfer_syntax(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
    if not meta.get("TransferSyntaxUID"):
        # raw datasets without file meta: the parser knows how it decoded them
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = UID(
            "1.2.840.10008.1.2" if implicit else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        )
        ds.file_meta = meta


def _pixel_problem(exc: Exception, instance: Instance) -> RejectedError:
    text = str(exc)
    ts = UID(instance.transfer_syntax) if instance.transfer_syntax else None
    ts_name = ts.name if ts is not None else "unknown transfer syntax"
    if "less than expected" in text or "truncat" in text.lower() or isinstance(exc, EOFError):
        return RejectedError(Reason.TRUNCATED, f"pixel data shorter than Rows x Columns x frames ({ts_name})")
    if ts is not None and ts.is_compressed and ("decode" in text.lower() or "decompress" in text.lower()):
        return RejectedError(
            Reason.UNSUPPORTED_TRANSFER_SYNTAX,
            f"no installed decoder handles {ts_name} ({ts}); pydicom decodes RLE/Deflate natively, others need "
            "pylibjpeg or GDCM plugins",
        )
    return RejectedError(Reason.PIXEL_DECODE_ERROR, f"pixel data cannot be decoded ({type(exc).__name__}, {ts_name})")


def _multi(value: Any) -> list[Any]:
    if value is None:
        return []
    value = getattr(value, "value", value)
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    items = _multi(value)
    if len(items) != n:
        return None
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


def _float(value: Any, default: float | None) -> Any:
    items = _multi(value)
    try:
        out = float(items[0]) if items else default
    except (TypeError, ValueError):
        return default
    return out if out is None or np.isfinite(out) else default


def _rescale(value: Any, default: float) -> float:
    """A rescale value as written: absent is `default`; zero, non-finite or unparsable values are kept (as nan
    when unparsable) so that the plausibility check rejects them instead of silently replacing them."""
    items = _multi(value)
    if not items or items[0] is None or str(items[0]).strip() == "":
        return default
    try:
        return float(items[0])
    except (TypeError, ValueError):
        return float("nan")


def spacing_values(ds: Dataset) -> list[tuple[str, float]]:
    """Every PixelSpacing and SliceThickness value of a header (top level and functional groups), as written
    (unparsable values as nan), for the plausibility check."""
    found: list[tuple[str, float]] = []
    holders = [ds]
    for name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(name) or []:
            holders.extend(item.get("PixelMeasuresSequence") or [])
    for holder in holders:
        for keyword in ("PixelSpacing", "SliceThickness"):
            for v in _multi(holder.get(keyword)):
                if v is None or str(v).strip() == "":
                    continue
                try:
                    found.append((keyword, float(v)))
                except (TypeError, ValueError):
                    found.append((keyword, float("nan")))
    return found


def _int(value: Any, default: int = 0) -> int:
    out = _float(value, None)
    return default if out is None else int(out)


def as_float(value: Any, default: float | None = None) -> float | None:
    """Best-effort float of a DICOM value (multi-valued: the first)."""
    out: float | None = _float(value, default)
    return out


def as_strings(value: Any) -> list[str]:
    """Best-effort list of strings of a DICOM value."""
    return [str(v) for v in _multi(value)]
