from __future__ import annotations

import io
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.uid import DeflatedExplicitVRLittleEndian

from demo_corpus.dicom import encode, merged, mr_template, slice_elements, study_dataset
from demo_corpus.encoder import SeriesEncoder, deflate_part10
from demo_corpus.plan import CorpusPlan


@pytest.mark.parametrize("syntax", ["deflated", "explicit"])
def test_series_encoder_writes_the_bytes_pydicom_writes(tiny_plan: CorpusPlan, syntax: str) -> None:
    study = tiny_plan.studies[0]
    series = next(s for s in study.series if s.grids and s.kind != "localizer")
    grid = series.grids[0]
    template = mr_template(study_dataset(study, series, np.random.default_rng(0)), study, series, grid, (90.0, 180.0))
    encoder = SeriesEncoder(template, syntax)
    pixels = np.arange(grid.rows * grid.cols, dtype=np.uint16).reshape(grid.rows, grid.cols)
    for index in range(min(3, grid.n_slices)):
        per_slice = slice_elements(series, grid, index, index + 1, 1000)
        fast = encoder.encode(per_slice, pixels + index)
        assert fast == encode(merged(template, per_slice), syntax, pixels + index)
        ds = pydicom.dcmread(DicomBytesIO(fast))
        assert ds.InstanceNumber == index + 1
        assert np.array_equal(ds.pixel_array, pixels + index)


def test_series_encoder_rejects_repeated_elements(tiny_plan: CorpusPlan) -> None:
    study = tiny_plan.studies[0]
    series = next(s for s in study.series if s.grids)
    template = study_dataset(study, series, np.random.default_rng(0))
    template.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    per_slice = pydicom.Dataset()
    per_slice.SOPInstanceUID, per_slice.PatientName = "1.2.3", "X^Y"
    with pytest.raises(ValueError, match="repeat"):
        SeriesEncoder(template, "deflated").encode(per_slice, np.zeros((4, 4), np.uint16))


def _split(part10: bytes) -> tuple[bytes, bytes]:
    """(preamble and file meta group, the rest) of a Part-10 file."""
    group_length = int.from_bytes(part10[140:144], "little")  # (0002,0000) UL: the value after tag, VR, length
    return part10[: 144 + group_length], part10[144 + group_length :]


def test_a_deflated_file_holds_the_dataset_pydicom_deflates_at_another_level(tiny_plan: CorpusPlan) -> None:
    study = tiny_plan.studies[0]
    series = next(s for s in study.series if s.grids and s.kind != "localizer")
    grid = series.grids[0]
    template = mr_template(study_dataset(study, series, np.random.default_rng(0)), study, series, grid, (90.0, 180.0))
    pixels = np.arange(grid.rows * grid.cols, dtype=np.uint16).reshape(grid.rows, grid.cols)
    ours = encode(merged(template, slice_elements(series, grid, 0, 1, 1000)), "deflated", pixels)
    theirs_ds = merged(template, slice_elements(series, grid, 0, 1, 1000))
    theirs_ds.file_meta = pydicom.dataset.FileMetaDataset()
    theirs_ds.file_meta.MediaStorageSOPClassUID = theirs_ds.SOPClassUID
    theirs_ds.file_meta.MediaStorageSOPInstanceUID = theirs_ds.SOPInstanceUID
    theirs_ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    theirs_ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    theirs_ds.save_as(buffer, enforce_file_format=True)  # pydicom's own Deflated writer (zlib's default level)
    theirs = buffer.getvalue()
    (our_meta, our_body), (their_meta, their_body) = _split(ours), _split(theirs)
    assert our_meta == their_meta
    assert our_body != their_body  # another level...
    assert zlib.decompress(our_body, -zlib.MAX_WBITS) == zlib.decompress(their_body, -zlib.MAX_WBITS)  # ...same data
    assert len(ours) % 2 == 0
    back = pydicom.dcmread(DicomBytesIO(ours))
    assert back.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(back.pixel_array, pixels)


def test_deflate_part10_takes_only_explicit_little_endian_part10_files(tiny_plan: CorpusPlan) -> None:
    with pytest.raises(ValueError, match="DICM"):
        deflate_part10(b"\x00" * 200)
    study = tiny_plan.studies[0]
    series = next(s for s in study.series if s.grids and s.kind != "localizer")
    grid = series.grids[0]
    template = mr_template(study_dataset(study, series, np.random.default_rng(0)), study, series, grid, (90.0, 180.0))
    already = encode(merged(template, slice_elements(series, grid, 0, 1, 1000)), "deflated",
                     np.zeros((grid.rows, grid.cols), np.uint16))  # fmt: skip
    with pytest.raises(ValueError, match="explicit VR little endian"):
        deflate_part10(already)


@pytest.mark.parametrize("syntax", ["deflated", "explicit"])
def test_series_encoder_file_meta_follows_instance_uids_of_any_length(tiny_plan: CorpusPlan, syntax: str) -> None:
    """The meta group is reused between slices with only the instance UID swapped: UIDs of odd and even lengths
    (padded or not), repeated lengths (the cached group) and a new length each give pydicom's bytes."""
    study = tiny_plan.studies[0]
    series = next(s for s in study.series if s.grids and s.kind != "localizer")
    grid = series.grids[0]
    template = mr_template(study_dataset(study, series, np.random.default_rng(0)), study, series, grid, (90.0, 180.0))
    encoder = SeriesEncoder(template, syntax)
    pixels = np.ones((grid.rows, grid.cols), np.uint16)
    for uid in ("1.2.3.4.5", "1.2.3.4.6", "1.2.3.44.55", "1.2.3.4.7.8", "1.2.3.4.5.6.7.8.9.10.11.12.13"):
        per_slice = slice_elements(series, grid, 0, 1, 1000)
        per_slice.SOPInstanceUID = uid
        fast = encoder.encode(per_slice, pixels)
        assert fast == encode(merged(template, per_slice), syntax, pixels)
        ds = pydicom.dcmread(DicomBytesIO(fast))
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == uid
