"""Tiny benchmark fixtures written in each benchmark's own layout (DICOM with pydicom, NIfTI with nibabel)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from hlip.data.contract import StudyContract
from hlip.data.preprocess import PreprocessConfig
from hlip.data.sampling import ScanPolicy

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
N_SLICES = 10  # ingest's default min_slices
SIDE = 16


@pytest.fixture
def small_spec() -> StudyContract:
    """A study contract small enough for unit tests: 8 x 16 x 16 at the native spacing, every scan."""
    return StudyContract(PreprocessConfig(size=(8, 16, 16), spacing=None), ScanPolicy("all"))


def _write_ct_series(
    folder: Path,
    study_uid: str,
    series_uid: str | None = None,
    hu: float = 40.0,
    name: Callable[[int, str], str] = lambda i, sop: f"CT{i:06d}.dcm",
    sop_uid: Callable[[int], str] | None = None,
) -> list[Path]:
    """An axial head CT series of `N_SLICES` 16x16 slices at `hu` HU (stored value hu + 1024, intercept -1024)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RSNA's public UIDs ("ID_...") are not valid UI values
        return _write_series(folder, study_uid, series_uid, hu, name, sop_uid)


def _write_series(
    folder: Path,
    study_uid: str,
    series_uid: str | None,
    hu: float,
    name: Callable[[int, str], str],
    sop_uid: Callable[[int], str] | None,
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    paths = []
    for i in range(N_SLICES):
        sop = sop_uid(i) if sop_uid else generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.SeriesDescription = "CT", "PLAIN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, float(5 * i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 5.0
        ds.Rows = ds.Columns = SIDE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.full((SIDE, SIDE), hu + 1024, dtype=np.uint16).tobytes()
        path = folder / name(i, sop)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _write_nifti(path: Path, data: np.ndarray, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Path:
    """A NIfTI file with a RAS diagonal affine."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), str(path))
    return path


@pytest.fixture
def write_ct_series() -> Callable[..., list[Path]]:
    """Factory: an axial CT series of 10 slices of 16x16 at a constant HU (see `_write_ct_series`)."""
    return _write_ct_series


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """Factory: a NIfTI file with a diagonal RAS affine."""
    return _write_nifti
