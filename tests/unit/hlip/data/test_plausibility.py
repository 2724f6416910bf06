"""Physical plausibility: absurd rescale and spacing values are quarantined with their reason, never used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.dicom import read_instance
from hlip.data.ingest import ingest
from hlip.data.quarantine import Reason, RejectedError
from hlip.data.source import LocalSource
from hlip.data.volume import LimitsConfig, check_plausible

Writer = Callable[..., list[Path]]
LIMITS = LimitsConfig()


def _verdict(folder: Path, name: str) -> Reason | None:
    src = LocalSource(folder)
    try:
        check_plausible(read_instance(src, name), LIMITS)
    except RejectedError as exc:
        return exc.reason
    return None


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # the nan/inf values are written on purpose
@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"RescaleSlope": 1e300}, Reason.IMPLAUSIBLE_RESCALE),
        ({"RescaleSlope": 0}, Reason.IMPLAUSIBLE_RESCALE),
        ({"RescaleSlope": "nan"}, Reason.IMPLAUSIBLE_RESCALE),
        ({"RescaleIntercept": -1e300}, Reason.IMPLAUSIBLE_RESCALE),
        ({"RescaleIntercept": "inf"}, Reason.IMPLAUSIBLE_RESCALE),
        ({"PixelSpacing": [1e30, 1e30]}, Reason.IMPLAUSIBLE_SPACING),
        ({"PixelSpacing": [-0.5, 0.5]}, Reason.IMPLAUSIBLE_SPACING),
        ({"PixelSpacing": [0, 0.5]}, Reason.IMPLAUSIBLE_SPACING),
        ({"SliceThickness": 0}, Reason.IMPLAUSIBLE_SPACING),
        ({"SliceThickness": "nan"}, Reason.IMPLAUSIBLE_SPACING),
        ({"RescaleSlope": 2.5, "RescaleIntercept": -1024}, None),
        ({"PixelSpacing": [0.4, 0.4], "SliceThickness": 5}, None),
    ],
)
def test_rescale_and_spacing_limits(
    tmp_path: Path, write_series: Writer, values: dict[str, object], reason: Reason | None
) -> None:
    good = write_series(tmp_path / "s", n=1)[0]
    ds = pydicom.dcmread(good)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(tmp_path / "variant")
    assert _verdict(tmp_path, "variant") == reason


def test_enhanced_file_spacing_in_functional_groups_is_checked(tmp_path: Path, write_series: Writer) -> None:
    path = write_series(tmp_path, n=4, enhanced=True)[0]
    ds = pydicom.dcmread(path)
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [-1.0, 1.0]
    ds.save_as(tmp_path / "bad")
    assert _verdict(tmp_path, path.name) is None
    assert _verdict(tmp_path, "bad") == Reason.IMPLAUSIBLE_SPACING


def test_a_series_with_an_absurd_slope_is_quarantined_not_used(tmp_path: Path, write_series: Writer) -> None:
    write_series(tmp_path / "raw" / "bad", n=6, slope=1e300)
    write_series(tmp_path / "raw" / "good", n=6)
    config = IngestConfig.from_dict({"workers": 1, "series": {"min_slices": 6}, "preprocess": {"size": [6, 8, 8]}})
    summary = ingest(tmp_path / "raw", tmp_path / "out", config=config, key=HashKey("k"))
    assert summary["scans"] == 1
    assert summary["files_used"] == 6
    assert summary["quarantined_by_reason"]["file:implausible_rescale"] == 6


def test_limits_come_from_params() -> None:
    config = IngestConfig.from_dict({"limits": {"max_abs_slope": 5.0, "max_spacing_mm": 20.0}})
    assert config.limits == LimitsConfig(max_abs_slope=5.0, max_abs_intercept=1.0e5, max_spacing_mm=20.0)
    with pytest.raises(ValueError, match="limits"):
        IngestConfig.from_dict({"limits": {"max_slope": 5.0}})
    with pytest.raises(ValueError, match="positive"):
        LimitsConfig(max_spacing_mm=0)
