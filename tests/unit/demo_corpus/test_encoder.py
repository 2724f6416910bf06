from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO

from demo_corpus.dicom import encode, merged, mr_template, slice_elements, study_dataset
from demo_corpus.encoder import SeriesEncoder
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
