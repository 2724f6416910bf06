"""Tiny DICOM files and archives of them, for the request-safety tests."""

from __future__ import annotations

import base64
import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def dicom_bytes(rows: int = 8, cols: int = 8, frames: int = 1) -> bytes:
    """One small MR image as DICOM file bytes (preamble, file meta, pixels)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.Modality, ds.Rows, ds.Columns = "MR", rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.zeros((frames, rows, cols), np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            t.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


@pytest.fixture
def b64() -> Callable[[bytes], str]:
    return lambda data: base64.b64encode(data).decode()


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """An allowed root holding one study folder of three DICOM files and a text file."""
    folder = tmp_path / "root" / "study"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.dcm").write_bytes(dicom_bytes())
    (folder / "README.txt").write_text("not dicom")
    return folder
