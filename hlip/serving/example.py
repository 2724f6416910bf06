"""The served model's input example: a small synthetic study (one axial MR series of noise, no person in it)
sent as a zip archive, so the logged example is a request that works end to end, as a client would send it.

It is made here, not read from any data: fixed UIDs under the DICOM example root, fixed pixel values, no
identifiers. MLflow runs it through the model when the model is logged, so it must stay small.
"""

from __future__ import annotations

import base64
import io
import zipfile

import numpy as np

ROOT_UID = "1.2.826.0.1.3680043.10.1453"  # an example UID root, never a real study's
N_SLICES, SIZE = 12, 24  # at least ingest's min_slices (10); small enough to embed in the model's metadata


def example_study_zip(n_slices: int = N_SLICES, size: int = SIZE) -> bytes:
    """A zip of one synthetic axial MR series (`n_slices` files of `size` x `size`), deterministic bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    pixels = np.random.default_rng(0).integers(0, 1000, (n_slices, size, size), dtype=np.uint16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(n_slices):
            ds = Dataset()
            ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", f"{ROOT_UID}.3.{i + 1}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT_UID}.1", f"{ROOT_UID}.2"
            ds.FrameOfReferenceUID = f"{ROOT_UID}.4"
            ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", "AX T1 EXAMPLE", i + 1
            ds.PatientName, ds.PatientID, ds.AccessionNumber = "EXAMPLE", "EXAMPLE", "EXAMPLE"
            ds.RepetitionTime, ds.EchoTime = 500.0, 10.0
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.ImagePositionPatient = [0.0, 0.0, float(4 * i)]
            ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 4.0
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = pixels[i].tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            member = io.BytesIO()
            ds.save_as(member, enforce_file_format=True)
            info = zipfile.ZipInfo(f"series/{i + 1:03d}.dcm", date_time=(2020, 1, 1, 0, 0, 0))
            archive.writestr(info, member.getvalue(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def example_request() -> dict[str, list[str]]:
    """The input example as columns: one row with the synthetic study as `study_archive` (base64)."""
    return {"study_archive": [base64.b64encode(example_study_zip()).decode()]}
