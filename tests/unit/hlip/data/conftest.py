"""Tiny DICOM series written with pydicom, for the ingestion tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)

# Identifiers planted in every fixture header; the de-identification tests look for each of them in the outputs.
PATIENT = {
    "PatientName": "Quixote^Alonso^Q",
    "PatientID": "PID8675309",
    "PatientBirthDate": "19470523",
    "AccessionNumber": "ACC4455667",
    "InstitutionName": "Rocinante General Hospital",
    "InstitutionAddress": "12 Windmill Lane^La Mancha",
    "ReferringPhysicianName": "Sancho^Panza",
    "OperatorsName": "Dulcinea^Toboso",
    "PerformingPhysicianName": "Carrasco^Sanson",
    "StationName": "MANCHA-MR1",
    "StudyID": "STU77821",
    "OtherPatientIDs": "OPID553311",
    "PatientAddress": "7 Barataria Street",
    "PatientTelephoneNumbers": "555-867-5309",
    "ImageComments": "patient Quixote moved",
    "StudyDescription": "MRI BRAIN Quixote protocol",
}


def _base(sop_class: str, modality: str, study_uid: str, series_uid: str, **extra: Any) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = extra.pop("frame_of_reference", "1.2.826.0.1.3680043.8.498.1")
    ds.Modality = modality
    ds.StudyDate = "20240102"
    ds.SeriesDate = "20240102"
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    for key, value in extra.items():
        setattr(ds, key, value)
    return ds


def _save(ds: Dataset, path: Path, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if transfer_syntax == RLELossless and "PixelData" in ds:
        ds.compress(RLELossless)
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _set_pixels(ds: Dataset, frames: np.ndarray) -> None:
    ds.Rows, ds.Columns = frames.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = frames.astype(np.int16).tobytes()


def phantom(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A smooth blob that grows with the slice index (so slice order is visible in the volume)."""
    k, j, i = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    blob = 200 * np.exp(-(((j - rows / 2) ** 2 + (i - cols / 2) ** 2) / (2 * (rows / 4) ** 2)))
    noise = np.random.default_rng(seed).normal(0, 2, size=blob.shape)
    return (blob + 10 * k + noise + 50).astype(np.int16)


SeriesWriter = Callable[..., list[Path]]


@pytest.fixture
def write_series() -> SeriesWriter:
    """Factory: write one series of single-frame (or one enhanced multi-frame) files, return the paths."""

    def write(
        folder: Path,
        n: int = 12,
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
        modality: str = "MR",
        rows: int = 16,
        cols: int = 16,
        orientation: Sequence[float] = AXIAL,
        spacing: float = 2.0,
        pixel_spacing: tuple[float, float] = (1.5, 1.5),
        positions: Sequence[float] | None = None,
        slope: float = 1.0,
        intercept: float = 0.0,
        transfer_syntax: str = ExplicitVRLittleEndian,
        enhanced: bool = False,
        shuffle: bool = True,
        name: Callable[[int], str] | None = None,
        pixels: np.ndarray | None = None,
        **tags: Any,
    ) -> list[Path]:
        study_uid = study_uid or generate_uid()
        series_uid = series_uid or generate_uid()
        sop_class = {"MR": ENHANCED_MR if enhanced else MR_IMAGE, "CT": CT_IMAGE}.get(modality, MR_IMAGE)
        data = pixels if pixels is not None else phantom(n, rows, cols)
        offsets = list(positions) if positions is not None else [k * spacing for k in range(n)]
        o = np.asarray(orientation, dtype=float)
        normal = np.cross(o[:3], o[3:])
        origin = np.array([-12.0, -12.0, -30.0])
        pos = [tuple(float(v) for v in origin + d * normal) for d in offsets]
        # instance numbers deliberately run against the position order: ordering must come from geometry
        order = list(range(n))[::-1] if shuffle else list(range(n))
        folder.mkdir(parents=True, exist_ok=True)
        if enhanced:
            ds = _base(sop_class, modality, study_uid, series_uid, **tags)
            ds.NumberOfFrames = n
            shared = Dataset()
            po, pm, px = Dataset(), Dataset(), Dataset()
            po.ImageOrientationPatient = list(orientation)
            pm.PixelSpacing = list(pixel_spacing)
            pm.SliceThickness = spacing
            px.RescaleSlope, px.RescaleIntercept, px.RescaleType = slope, intercept, "US"
            shared.PlaneOrientationSequence = DicomSequence([po])
            shared.PixelMeasuresSequence = DicomSequence([pm])
            shared.PixelValueTransformationSequence = DicomSequence([px])
            ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
            frames = []
            for idx in order:
                item, pp = Dataset(), Dataset()
                pp.ImagePositionPatient = list(pos[idx])
                item.PlanePositionSequence = DicomSequence([pp])
                frames.append(item)
            ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
            _set_pixels(ds, data[order])
            path = folder / (name(0) if name else "enhanced.dcm")
            _save(ds, path, transfer_syntax)
            return [path]
        paths = []
        for number, idx in enumerate(order):
            ds = _base(sop_class, modality, study_uid, series_uid, **tags)
            ds.InstanceNumber = number + 1
            ds.ImagePositionPatient = list(pos[idx])
            ds.ImageOrientationPatient = list(orientation)
            ds.PixelSpacing = list(pixel_spacing)
            ds.SliceThickness = spacing
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            _set_pixels(ds, data[idx])
            path = folder / (name(number) if name else f"IM{number:04d}")
            _save(ds, path, transfer_syntax)
            paths.append(path)
        return paths

    return write


@pytest.fixture
def write_special() -> Callable[..., Path]:
    """Factory for one-off instances: secondary capture RGB, SR document."""

    def write(path: Path, kind: str, study_uid: str, **tags: Any) -> Path:
        if kind == "sc_rgb":
            ds = _base(SC_IMAGE, "OT", study_uid, generate_uid(), ConversionType="WSD", **tags)
            ds.Rows, ds.Columns, ds.SamplesPerPixel = 8, 8, 3
            ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PixelData = np.zeros((8, 8, 3), np.uint8).tobytes()
        elif kind == "sr":
            ds = _base(BASIC_TEXT_SR, "SR", study_uid, generate_uid(), **tags)
            ds.ValueType = "CONTAINER"
        else:
            raise ValueError(kind)
        _save(ds, path, ExplicitVRLittleEndian)
        return path

    return write


__all__ = ["AXIAL", "CORONAL", "PATIENT", "SAGITTAL", "DeflatedExplicitVRLittleEndian", "RLELossless"]
