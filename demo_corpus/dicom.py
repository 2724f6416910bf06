"""DICOM datasets of the demo corpus: MR Image Storage slices, Enhanced MR multi-frame volumes, and encoding.

Modules follow the MR and Enhanced MR IODs closely enough for pydicom, dcm2niix-style readers and a series
classifier; vendor habits are imitated where they matter (Philips rescale slopes, GE's missing LOCALIZER type).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

from demo_corpus.encoder import deflate_part10
from demo_corpus.geometry import Grid
from demo_corpus.identity import SITES
from demo_corpus.plan import StudyPlan, uid
from demo_corpus.protocol import SeriesPlan

SYNTAXES = {"deflated": DeflatedExplicitVRLittleEndian, "explicit": ExplicitVRLittleEndian, "rle": RLELossless}
_SOFTWARE = {
    "SIEMENS": "syngo MR E11",
    "GE MEDICAL SYSTEMS": "27\\LX\\MR Software release:RX27.0_R02",
    "Philips": "5.6.1\\5.6.1.2",
}
_CONTRAST = {
    "t1": "T1",
    "t1c": "T1",
    "t2": "T2",
    "flair": "FLUID_ATTENUATED",
    "dwi": "DIFFUSION",
    "adc": "DIFFUSION",
    "swi": "T2_STAR",
}


def _age(birth: str, date: str) -> str:
    years = int(date[:4]) - int(birth[:4]) - (1 if date[4:] < birth[4:] else 0)
    return f"{years:03d}Y"


def study_dataset(study: StudyPlan, series: SeriesPlan, rng: np.random.Generator) -> Dataset:
    """Patient, study, series and equipment modules shared by every object of a series (PHI included)."""
    site, p = SITES[study.site], study.patient
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = p.dicom_name, p.patient_id, p.birth_date, p.sex
    ds.PatientAge = _age(p.birth_date, study.date)
    ds.PatientWeight = round(float(rng.uniform(50, 110)), 1)
    ds.PatientAddress = p.address
    if rng.random() < 0.3:
        ds.PatientTelephoneNumbers = p.phone
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study.uid, study.date, study.time
    ds.AccessionNumber, ds.StudyID = study.accession, str(1000 + study.index)
    ds.StudyDescription = "MRI BRAIN W/WO CONTRAST" if "t1c" in study.kinds else "MRI BRAIN"
    ds.ReferringPhysicianName = study.referring
    ds.RequestedProcedureDescription = "MR HEAD" if rng.random() < 0.8 else f"MR HEAD {p.family}, {p.given}"
    if rng.random() < 0.15:
        ds.StudyComments = f"pt {p.display_name} anxious, offered sedation"
    ds.InstitutionName, ds.InstitutionAddress = site.institution, site.address
    ds.InstitutionalDepartmentName, ds.StationName = site.department, site.station
    ds.PerformingPhysicianName, ds.OperatorsName = study.radiologist, study.operator
    ds.Manufacturer, ds.ManufacturerModelName = site.vendor, site.model
    ds.DeviceSerialNumber, ds.SoftwareVersions = site.serial, _SOFTWARE[site.vendor]
    ds.Modality = "SR" if series.kind == "sr" else "MR"
    ds.SeriesInstanceUID, ds.SeriesNumber = series.uid, series.number
    ds.SeriesDescription = series.description
    ds.ProtocolName = series.description or "MR BRAIN"
    ds.SeriesDate = study.date
    ds.SeriesTime = f"{study.time[:2]}{(int(study.time[2:4]) + series.number) % 60:02d}{study.time[4:]}"
    ds.BodyPartExamined = "BRAIN" if site.vendor != "GE MEDICAL SYSTEMS" else "HEAD"
    ds.PatientPosition = "HFS"
    if series.grids:
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = study.frame_uid, ""
    return ds


def _image_type(series: SeriesPlan, vendor: str, enhanced: bool) -> list[str]:
    if enhanced:
        flavour = {"adc": "ADC", "dwi": "DIFFUSION"}.get(series.kind, "MIN_IP" if series.entry == "swi_mip" else "NONE")
        return [
            "DERIVED" if series.derived else "ORIGINAL",
            "PRIMARY",
            "VOLUME" if not series.derived else flavour,
            "NONE",
        ]
    if series.kind == "adc":
        return ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"] if vendor == "SIEMENS" else ["DERIVED", "PRIMARY", "ADC"]
    if series.entry == "swi_mip":
        return ["DERIVED", "PRIMARY", "MNIP", "SWI"]
    if series.kind == "localizer":
        return {
            "SIEMENS": ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"],
            "Philips": ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"],
        }.get(vendor, ["ORIGINAL", "PRIMARY", "LOCALIZER"])
    if series.kind == "dwi":
        return ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND"]
    return ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"] if vendor == "SIEMENS" else ["ORIGINAL", "PRIMARY", "OTHER"]


def window_of(pixels: NDArray[np.uint16], slope: float) -> tuple[float, float]:
    """WindowCenter and WindowWidth in real-world units, from the data (every eighth slice is enough)."""
    lo, hi = np.percentile(pixels[:: max(1, len(pixels) // 8)], [1.0, 99.5])
    return round(float(hi + lo) / 2 * slope, 1), round(max(float(hi - lo), 1.0) * slope, 1)


def _mr_tags(ds: Dataset, series: SeriesPlan, field_strength: float) -> None:
    """Acquisition tags of the classic MR Image module."""
    m = series.params
    if m is None:
        return
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = m.scanning_sequence, m.sequence_variant, m.scan_options
    ds.MRAcquisitionType, ds.SequenceName = m.acquisition_type, m.sequence_name
    ds.RepetitionTime, ds.EchoTime = m.repetition_time, m.echo_time
    if m.inversion_time is not None:
        ds.InversionTime = m.inversion_time
    ds.FlipAngle, ds.EchoTrainLength, ds.NumberOfAverages = m.flip_angle, m.echo_train_length, 1
    ds.MagneticFieldStrength, ds.ImagedNucleus = field_strength, "1H"
    ds.ImagingFrequency = round(42.577478 * field_strength, 6)
    if series.contrast_agent:
        ds.ContrastBolusAgent = "GADOBUTROL 7.5 ML" if field_strength > 2 else "Dotarem"
        ds.ContrastBolusVolume = 7.5 if field_strength > 2 else 15.0


def _pixel_module(ds: Dataset, rows: int, cols: int) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0


def mr_template(
    base: Dataset, study: StudyPlan, series: SeriesPlan, grid: Grid, window: tuple[float, float]
) -> Dataset:
    """The MR Image Storage elements shared by the slices of one stack (`slice_elements` holds the rest)."""
    vendor, field = SITES[study.site].vendor, SITES[study.site].field_strength
    ds = Dataset()
    ds.update(base)
    ds.SOPClassUID = MRImageStorage
    ds.ImageType = _image_type(series, vendor, enhanced=False)
    ds.AcquisitionNumber = 1
    ds.ContentDate, ds.ContentTime = study.date, base.SeriesTime
    ds.ImageOrientationPatient = grid.orientation()
    ds.PixelSpacing = list(grid.pixel_spacing)
    ds.SliceThickness, ds.SpacingBetweenSlices = grid.thickness, round(grid.spacing, 4)
    _pixel_module(ds, grid.rows, grid.cols)
    ds.AcquisitionMatrix = [0, grid.rows, grid.cols, 0]
    ds.InPlanePhaseEncodingDirection = "ROW" if grid.cols < grid.rows else "COL"
    ds.WindowCenter, ds.WindowWidth = window
    if vendor == "Philips" or series.rescale_slope != 1.0:
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, series.rescale_slope, "normalized"
    _mr_tags(ds, series, field)
    return ds


def slice_elements(series: SeriesPlan, grid: Grid, index: int, instance: int, b_value: int | None) -> Dataset:
    """The elements of one slice that differ from its stack's template: identity and position."""
    ds = Dataset()
    ds.SOPInstanceUID = uid(0, series.uid, instance)
    ds.InstanceNumber = instance
    position = grid.positions()[index]
    ds.ImagePositionPatient = [round(float(v), 4) for v in position]
    ds.SliceLocation = round(float(np.dot(position, grid.normal)), 4)
    if b_value is not None:
        ds.DiffusionBValue = float(b_value)
    return ds


def merged(*parts: Dataset) -> Dataset:
    """One dataset holding the elements of several (later ones win)."""
    ds = Dataset()
    for part in parts:
        ds.update(part)
    return ds


def _item(**tags: Any) -> Dataset:
    item = Dataset()
    for key, value in tags.items():
        setattr(item, key, value)
    return item


def enhanced_mr(
    base: Dataset,
    study: StudyPlan,
    series: SeriesPlan,
    frames: list[tuple[Grid, int, int | None]],
    window: tuple[float, float],
) -> Dataset:
    """One Enhanced MR Image Storage instance: every frame of the series, geometry in functional groups."""
    vendor, field = SITES[study.site].vendor, SITES[study.site].field_strength
    grid = frames[0][0]
    m = series.params
    ds = Dataset()
    ds.update(base)
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, uid(0, series.uid, 1)
    ds.ImageType = _image_type(series, vendor, enhanced=True)
    ds.InstanceNumber, ds.ContentQualification, ds.ResonantNucleus = 1, "PRODUCT", "1H"
    ds.ContentDate, ds.ContentTime = study.date, ds.SeriesTime
    ds.AcquisitionDateTime = f"{study.date}{ds.SeriesTime}.000000"
    ds.MagneticFieldStrength, ds.NumberOfFrames = field, len(frames)
    ds.AcquisitionContrast = _CONTRAST.get(series.kind, "UNKNOWN")
    if m is not None:
        ds.MRAcquisitionType, ds.PulseSequenceName = m.acquisition_type, m.sequence_name
        ds.EchoPulseSequence = (
            "GRADIENT" if m.scanning_sequence.startswith("GR") or m.scanning_sequence == "EP" else "SPIN"
        )
    if series.contrast_agent:
        ds.ContrastBolusAgent = "GADOBUTROL 7.5 ML"
    _pixel_module(ds, grid.rows, grid.cols)
    shared = _item(
        PixelMeasuresSequence=Sequence(
            [
                _item(
                    PixelSpacing=list(grid.pixel_spacing),
                    SliceThickness=grid.thickness,
                    SpacingBetweenSlices=round(grid.spacing, 4),
                )
            ]
        ),
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=grid.orientation())]),
        PixelValueTransformationSequence=Sequence(
            [_item(RescaleIntercept=0, RescaleSlope=series.rescale_slope, RescaleType="US")]
        ),
        FrameVOILUTSequence=Sequence([_item(WindowCenter=window[0], WindowWidth=window[1])]),
    )
    if m is not None:
        shared.MRTimingAndRelatedParametersSequence = Sequence(
            [_item(RepetitionTime=m.repetition_time, FlipAngle=m.flip_angle, EchoTrainLength=m.echo_train_length)]
        )
        shared.MREchoSequence = Sequence([_item(EffectiveEchoTime=m.echo_time)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    b_values = sorted({b for _, _, b in frames if b is not None})
    for g, index, b in frames:
        position = [round(float(v), 4) for v in g.positions()[index]]
        dims = [b_values.index(b) + 1, index + 1] if b is not None else [index + 1]
        item = _item(
            FrameContentSequence=Sequence(
                [_item(StackID="1", InStackPositionNumber=index + 1, DimensionIndexValues=dims)]
            ),
            PlanePositionSequence=Sequence([_item(ImagePositionPatient=position)]),
        )
        if b is not None:
            item.MRDiffusionSequence = Sequence(
                [_item(DiffusionBValue=float(b), DiffusionDirectionality="ISOTROPIC" if b else "NONE")]
            )
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=uid(0, series.uid, "dim"))])
    pointers = ([0x00189087] if b_values else []) + [0x00209057]
    ds.DimensionIndexSequence = Sequence(
        [
            _item(
                DimensionOrganizationUID=uid(0, series.uid, "dim"),
                DimensionIndexPointer=p,
                FunctionalGroupPointer=0x00189117 if p == 0x00189087 else 0x00209111,
            )
            for p in pointers
        ]
    )
    return ds


def encode(ds: Dataset, syntax: str, pixels: NDArray[np.uint8] | NDArray[np.uint16] | None) -> bytes:
    """The Part-10 file bytes of a dataset, its pixels encoded in a transfer syntax.

    Args:
        ds: The dataset, without file meta and pixel data.
        syntax: ``deflated``, ``explicit`` or ``rle``.
        pixels: ``[R, C]``, ``[F, R, C]`` or ``[R, C, 3]`` array, or None for objects without pixels.
    """
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = SYNTAXES[syntax]
    if pixels is not None:
        if syntax == "rle":
            # pylibjpeg-rle (pinned): the same bytes as pydicom's own Python encoder (every RLE frame of the corpus
            # compared), about 6x faster
            ds.compress(
                RLELossless, np.ascontiguousarray(pixels), encoding_plugin="pylibjpeg", generate_instance_uid=False
            )
        else:
            ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if syntax == "deflated":  # dcmwrite's bytes in the syntax Deflated wraps, deflated at the encoder's level
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    if syntax == "deflated":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        return deflate_part10(buffer.getvalue())
    return buffer.getvalue()
