"""Fast Part-10 encoding of the many slices of one series.

pydicom's `dcmwrite` re-encodes every element of every file; a series' slices share all but a handful of them.
`SeriesEncoder` encodes the shared elements once, as byte runs between the per-slice tags, and per slice encodes
only the per-slice elements and the file meta, then deflates. The bytes equal `dcmwrite`'s (a test checks it).
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

_PREAMBLE = b"\x00" * 128 + b"DICM"
_PIXEL_DATA = BaseTag(0x7FE00010)


def _buffer() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    return fp


class SeriesEncoder:
    """Encodes slices that share a template dataset, in explicit VR little endian, plain or deflated.

    Args:
        template: The shared elements (no pixel data); never modified.
        syntax: ``deflated`` or ``explicit``.
    """

    def __init__(self, template: Dataset, syntax: str) -> None:
        if syntax not in ("deflated", "explicit"):
            raise ValueError(f"SeriesEncoder handles deflated and explicit syntaxes, not {syntax!r}")
        self.template = template
        self.syntax = UID(DeflatedExplicitVRLittleEndian if syntax == "deflated" else ExplicitVRLittleEndian)
        self._runs: dict[tuple[BaseTag, ...], list[bytes]] = {}

    def _static_runs(self, tags: tuple[BaseTag, ...]) -> list[bytes]:
        """The template's encoded elements, cut into ``len(tags) + 1`` runs around the per-slice tags."""
        if tags not in self._runs:
            bounds = [BaseTag(0), *tags, BaseTag(0xFFFFFFFF)]
            runs = []
            for lo, hi in itertools.pairwise(bounds):
                part = Dataset()
                for elem in self.template:
                    if lo < elem.tag < hi:
                        part.add(elem)
                fp = _buffer()
                write_dataset(fp, part)
                runs.append(fp.getvalue())
            self._runs[tags] = runs
        return self._runs[tags]

    def encode(self, per_slice: Dataset, pixels: NDArray[np.uint16]) -> bytes:
        """The file bytes of one slice.

        Args:
            per_slice: Elements that differ between slices (must not also be in the template), SOPClassUID and
                SOPInstanceUID included when they differ; the template supplies the rest.
            pixels: The slice's stored values ``[R, C]``.
        """
        dynamic = Dataset()
        dynamic.update(per_slice)
        dynamic.add_new(_PIXEL_DATA, "OW", np.ascontiguousarray(pixels, dtype="<u2").tobytes())
        tags = tuple(sorted(dynamic.keys()))
        if any(t in self.template for t in tags):
            raise ValueError("per-slice elements must not repeat template elements")
        body = bytearray()
        for run, tag in zip(self._static_runs(tags), tags, strict=False):
            body += run
            fp = _buffer()
            write_data_element(fp, dynamic[tag])
            body += fp.getvalue()
        body += self._static_runs(tags)[-1]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = dynamic.get("SOPClassUID", self.template.get("SOPClassUID"))
        meta.MediaStorageSOPInstanceUID = dynamic.SOPInstanceUID
        meta.TransferSyntaxUID = self.syntax
        head = _buffer()
        write_file_meta_info(head, meta, enforce_standard=True)
        if self.syntax == DeflatedExplicitVRLittleEndian:
            compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            deflated = compressor.compress(bytes(body)) + compressor.flush()
            body = bytearray(deflated + (b"\x00" if len(deflated) % 2 else b""))
        return _PREAMBLE + head.getvalue() + bytes(body)
