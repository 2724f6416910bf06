"""Series classification: every kind from tags, description fallback, every junk reason, planes, CT kernels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hlip.data.dicom import read_instance
from hlip.data.quarantine import Reason
from hlip.data.series import Kind, Plane, SeriesConfig, SeriesDecision, classify_series, group_series, plane_of
from hlip.data.source import LocalSource

from .conftest import AXIAL, CORONAL, SAGITTAL

Writer = Callable[..., list[Path]]
CFG = SeriesConfig(min_slices=4)


def _classify(tmp_path: Path, write_series: Writer, n: int = 4, **tags: Any) -> SeriesDecision:
    paths = write_series(tmp_path, n=n, **tags)
    src = LocalSource(tmp_path)
    return classify_series([read_instance(src, p.relative_to(tmp_path).as_posix()) for p in paths], CFG)


@pytest.mark.parametrize(
    ("tags", "kind", "source"),
    [
        ({"RepetitionTime": 500, "EchoTime": 12}, Kind.T1, "TR=500"),
        ({"RepetitionTime": 500, "EchoTime": 12, "ContrastBolusAgent": "GADOVIST"}, Kind.T1C, "ContrastBolusAgent"),
        ({"RepetitionTime": 2000, "EchoTime": 3, "InversionTime": 900}, Kind.T1, "inversion"),
        ({"RepetitionTime": 4000, "EchoTime": 100}, Kind.T2, "long TR"),
        ({"RepetitionTime": 9000, "EchoTime": 120, "InversionTime": 2500}, Kind.FLAIR, "TI=2500"),
        # enhanced MR without TI: the timing alone says T2 / nothing, AcquisitionContrast says what it is
        (
            {"enhanced": True, "RepetitionTime": 8800, "EchoTime": 99, "AcquisitionContrast": "FLUID_ATTENUATED"},
            Kind.FLAIR,
            "AcquisitionContrast FLUID_ATTENUATED",
        ),
        (
            {"enhanced": True, "RepetitionTime": 1900, "EchoTime": 2.9, "AcquisitionContrast": "T1"},
            Kind.T1,
            "AcquisitionContrast T1",
        ),
        ({"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}, Kind.ADC, "ImageType ADC"),
        ({"DiffusionBValue": 1000}, Kind.DWI, "b-values [1000]"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "SWI"]}, Kind.SWI, "SWI"),
        ({"SeriesDescription": "AX FLAIR"}, Kind.FLAIR, "pattern 'flair'"),
        ({"SeriesDescription": "Ax T1 MPRAGE +C"}, Kind.T1C, "post-contrast"),
        ({"SeriesDescription": "ep2d_diff_trace"}, Kind.DWI, "pattern 'dwi'"),
        ({"SeriesDescription": "SWAN 3D"}, Kind.SWI, "pattern 'swi'"),
        ({"RepetitionTime": 4000, "EchoTime": 100, "SeriesDescription": "t2_flair_tra"}, Kind.FLAIR, "more specific"),
        ({"SeriesDescription": "mystery"}, Kind.OTHER, "no decisive"),
        ({"RepetitionTime": 40, "EchoTime": 25}, Kind.SWI, "T2*-weighted gradient echo"),
        ({"RepetitionTime": 40, "EchoTime": 25, "SeriesDescription": "mIP VEN_BOLD"}, Kind.SWI, "T2*"),
        ({"SeriesDescription": "mIP VEN_BOLD"}, Kind.SWI, "pattern 'swi'"),
        ({"RepetitionTime": 600, "EchoTime": 10, "SeriesDescription": "A xT1 FLAIR"}, Kind.T1, "short TR, short TE"),
        ({"SeriesDescription": "Ax T1 FLAIR"}, Kind.T1, "pattern 't1 flair'"),
    ],
)
def test_mr_kinds_from_tags_then_description(
    tmp_path: Path, write_series: Writer, tags: dict[str, Any], kind: Kind, source: str
) -> None:
    decision = _classify(tmp_path, write_series, **tags)
    assert decision.used
    assert decision.kind == kind
    assert source in decision.reason
    assert "Quixote" not in decision.reason  # reasons never echo free text


def test_tags_win_over_a_conflicting_description(tmp_path: Path, write_series: Writer) -> None:
    decision = _classify(tmp_path, write_series, RepetitionTime=9000, EchoTime=120, InversionTime=2500,
                         SeriesDescription="T1 AX")  # fmt: skip
    assert decision.kind == Kind.FLAIR


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, Reason.LOCALIZER),
        ({"SeriesDescription": "3-plane Localizer"}, Reason.LOCALIZER),
        ({"SeriesDescription": "Survey"}, Reason.LOCALIZER),
        ({"modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, Reason.LOCALIZER),
        ({"n": 2}, Reason.TOO_SHORT),
        ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, Reason.DERIVED_SCREENSHOT),
        ({"modality": "PT"}, Reason.UNSUPPORTED_MODALITY),
    ],
)
def test_junk_series_are_excluded_with_a_reason(
    tmp_path: Path, write_series: Writer, kwargs: dict[str, Any], reason: Reason
) -> None:
    decision = _classify(tmp_path, write_series, **kwargs)
    assert not decision.used
    assert decision.junk == reason
    assert decision.reason


def test_three_plane_localizer_from_mixed_orientations(tmp_path: Path, write_series: Writer) -> None:
    uid, study = "1.2.3.4.5.6", "1.2.3.4.5"
    for name, o in (("a", AXIAL), ("c", CORONAL), ("s", SAGITTAL)):
        write_series(tmp_path / name, n=3, orientation=o, series_uid=uid, study_uid=study)
    src = LocalSource(tmp_path)
    instances = [read_instance(src, f.path) for f in src.list_files()]
    groups = group_series(instances)
    assert list(groups) == [uid]
    decision = classify_series(groups[uid], CFG)
    assert decision.junk == Reason.LOCALIZER
    assert "3 slice orientations" in decision.reason


def test_secondary_capture_and_sr(tmp_path: Path, write_special: Callable[..., Path]) -> None:
    write_special(tmp_path / "sc", "sc_rgb", "1.2.3")
    write_special(tmp_path / "sr", "sr", "1.2.3")
    write_special(tmp_path / "dose", "sr", "1.2.3", SeriesDescription="Dose Report")
    src = LocalSource(tmp_path)
    got = {p: classify_series([read_instance(src, p)], CFG).junk for p in ("sc", "sr", "dose")}
    assert got == {"sc": Reason.SECONDARY_CAPTURE, "sr": Reason.STRUCTURED_REPORT, "dose": Reason.DOSE_REPORT}


def test_planes_and_ct_kernels(tmp_path: Path, write_series: Writer) -> None:
    assert plane_of((0, 0, 1)) == Plane.AXIAL
    assert plane_of((1, 0, 0)) == Plane.SAGITTAL
    assert plane_of((0, -1, 0)) == Plane.CORONAL
    assert plane_of((1, 1, 1)) == Plane.OBLIQUE
    sag = _classify(tmp_path / "s", write_series, orientation=SAGITTAL, RepetitionTime=500, EchoTime=10)
    assert sag.plane == Plane.SAGITTAL
    bone = _classify(tmp_path / "b", write_series, modality="CT", ConvolutionKernel="H70h")
    soft = _classify(tmp_path / "c", write_series, modality="CT", ConvolutionKernel="STANDARD")
    by_window = _classify(tmp_path / "w", write_series, modality="CT", WindowCenter=600, WindowWidth=2800)
    assert (bone.kind, bone.ct_kernel, soft.ct_kernel, by_window.ct_kernel) == (Kind.CT, "bone", "soft", "bone")
