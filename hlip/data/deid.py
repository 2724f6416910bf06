"""De-identification: keyed hashing of UIDs and IDs, and the DICOM PS3.15 Basic Application Level Confidentiality
Profile applied to headers.

Keys (study, series, scan, patient, accession) are HMAC-SHA256 digests under a secret from the environment
(`HLIP_DEID_KEY`). The same secret gives the same keys on every run, so incremental ingests join up; without the
secret nobody can go back from a key to a UID. When the variable is unset a fixed, public demo key is used and a
warning is logged: fine for the synthetic demo corpus, never for real patients.

`deidentify` returns a de-identified copy of a header (the input dataset is never changed): the attributes of
PS3.15 Table E.1-1 are removed, emptied or replaced (UIDs by keyed-hash UIDs), and on top of the table, as the
profile's "clean" intent asks, every private tag, overlay, curve, person name, date/time and free-text value is
removed, except a short list of technical strings (manufacturer, sequence name, kernel) that name no person or
place.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

DEID_KEY_ENV = "HLIP_DEID_KEY"
# Public and documented on purpose: the demo corpus is synthetic. Real data must set HLIP_DEID_KEY.
DEMO_KEY = "hlip-demo-deid-key-NOT-A-SECRET"
STANDARD_UID_ROOT = "1.2.840.10008."  # DICOM's own class and transfer-syntax UIDs identify nobody

# PS3.15 Table E.1-1, basic profile: keyword -> action (X remove, Z empty, D dummy, U keyed-hash UID).
BASIC_PROFILE: dict[str, str] = {
    **dict.fromkeys(
        [
            "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate",
            "StudyTime", "ReferringPhysicianName", "StudyID", "ContentDate", "ContentTime", "ContentCreatorName",
        ],
        "Z",
    ),
    **dict.fromkeys(["ContrastBolusAgent", "VerifyingObserverName", "PersonName"], "D"),
    **dict.fromkeys(
        [
            "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "MediaStorageSOPInstanceUID",
            "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "ReferencedFrameOfReferenceUID",
            "RelatedFrameOfReferenceUID", "SynchronizationFrameOfReferenceUID", "StorageMediaFileSetUID", "UID",
            "DimensionOrganizationUID", "ConcatenationUID", "IrradiationEventUID", "DeviceUID", "TargetUID",
            "TransactionUID", "InstanceCreatorUID", "FiducialUID",
        ],
        "U",
    ),
    **dict.fromkeys(
        [
            "AcquisitionComments", "AcquisitionContextSequence", "AcquisitionDate", "AcquisitionDateTime",
            "AcquisitionDeviceProcessingDescription", "AcquisitionProtocolDescription", "AcquisitionTime",
            "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AdmissionID", "AdmittingDate",
            "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription", "AdmittingTime", "Allergies",
            "AuthorObserverSequence", "BranchOfService", "CassetteID", "CommentsOnThePerformedProcedureStep",
            "ConfidentialityConstraintOnPatientDataDescription", "ContentCreatorIdentificationCodeSequence",
            "ContentSequence", "ContributionDateTime", "ContributionDescription", "CountryOfResidence",
            "CurrentPatientLocation", "CustodialOrganizationSequence", "DataSetTrailingPadding",
            "DerivationDescription", "DetectorID", "DeviceSerialNumber", "DigitalSignaturesSequence",
            "DischargeDiagnosisDescription", "DistributionAddress", "DistributionName", "EthnicGroup",
            "FrameComments", "GantryID", "GeneratorID", "GraphicAnnotationSequence", "HumanPerformerName",
            "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments", "ImageComments",
            "ImagePresentationComments", "ImagingServiceRequestComments", "Impressions", "InstanceCreationDate",
            "InstanceCreationTime", "InstitutionAddress", "InstitutionCodeSequence", "InstitutionName",
            "InstitutionalDepartmentName", "InsurancePlanIdentification",
            "IntendedRecipientsOfResultsIdentificationSequence", "InterpretationApproverSequence",
            "InterpretationAuthor", "InterpretationDiagnosisDescription", "InterpretationIDIssuer",
            "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber", "IssuerOfAdmissionID",
            "IssuerOfPatientID", "IssuerOfServiceEpisodeID", "LastMenstrualDate", "MedicalAlerts",
            "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence", "ModifiedImageDescription",
            "ModifyingDeviceID", "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults", "Occupation",
            "OperatorIdentificationSequence", "OperatorsName", "OriginalAttributesSequence",
            "OrderCallbackPhoneNumber", "OrderEnteredBy", "OrderEntererLocation", "OtherPatientIDs",
            "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress", "PatientAge", "PatientBirthName",
            "PatientBirthTime", "PatientComments", "PatientInstitutionResidence",
            "PatientInsurancePlanCodeSequence", "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence",
            "PatientReligiousPreference", "PatientSexNeutered", "PatientSize", "PatientState",
            "PatientTelephoneNumbers", "PatientTransportArrangements", "PatientWeight", "PerformedLocation",
            "PerformedProcedureStepDescription", "PerformedProcedureStepEndDate", "PerformedProcedureStepID",
            "PerformedProcedureStepStartDate", "PerformedStationAETitle", "PerformedStationName",
            "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName", "PersonAddress",
            "PersonIdentificationCodeSequence", "PersonTelephoneNumbers", "PhysicianApprovingInterpretation",
            "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
            "PhysiciansReadingStudyIdentificationSequence", "PlateID", "PreMedication", "PregnancyStatus",
            "ProtocolName", "ReasonForTheImagingServiceRequest", "ReasonForStudy",
            "ReferencedDigitalSignatureSequence", "ReferencedPatientAliasSequence", "ReferencedPatientSequence",
            "ReferencedPerformedProcedureStepSequence", "ReferencedSOPInstanceMACSequence",
            "ReferencedStudySequence", "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence",
            "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RequestAttributesSequence",
            "RequestedContrastAgent", "RequestedProcedureComments", "RequestedProcedureDescription",
            "RequestedProcedureID", "RequestedProcedureLocation", "RequestingPhysician", "RequestingService",
            "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments", "ResultsDistributionListSequence",
            "ResultsIDIssuer", "ScheduledHumanPerformersSequence", "ScheduledPatientInstitutionResidence",
            "ScheduledPerformingPhysicianIdentificationSequence", "ScheduledProcedureStepDescription",
            "ScheduledProcedureStepEndDate", "ScheduledProcedureStepLocation", "ScheduledProcedureStepStartDate",
            "ScheduledStationAETitle", "ScheduledStationName", "ScheduledStudyLocation",
            "ServiceEpisodeDescription", "ServiceEpisodeID", "SeriesDate", "SeriesDescription", "SeriesTime",
            "SmokingStatus", "SpecialNeeds", "StationName", "StudyComments", "StudyDescription", "StudyIDIssuer",
            "TextComments", "TextString", "TimezoneOffsetFromUTC", "TopicAuthor", "TopicKeywords", "TopicSubject",
            "TopicTitle", "VerifyingObserverIdentificationCodeSequence", "VerifyingObserverSequence",
            "VerifyingOrganization", "VisitComments",
        ],
        "X",
    ),
}  # fmt: skip

# Free-text VRs whose values can carry anything a technologist typed; removed unless named in KEEP_TEXT.
FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "AE", "PN", "DA", "DT", "TM", "AS", "UR", "UN"})
KEEP_TEXT = frozenset(
    {"Manufacturer", "ManufacturerModelName", "SequenceName", "ConvolutionKernel", "PulseSequenceName", "PatientID"}
)
DUMMY = {"PN": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000"}


class HashKey:
    """A de-identification secret and the keyed hashes made with it.

    Args:
        secret: The HMAC key.
        source: Where it came from ("env" or "demo"), for the logs and the summary.
    """

    def __init__(self, secret: str | bytes, source: str = "env") -> None:
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not self._secret:
            raise ValueError("the de-identification secret is empty")
        self.source = source

    @classmethod
    def from_env(cls, env: str = DEID_KEY_ENV) -> HashKey:
        """Read the secret from `env`; fall back to the public demo key with a warning."""
        secret = os.environ.get(env, "")
        if secret:
            return cls(secret, "env")
        log.warning(
            "%s is not set: using the PUBLIC demo de-identification key. Keys are then reversible by anyone who "
            "knows a UID; set %s to a private secret for real patient data.",
            env,
            env,
        )
        return cls(DEMO_KEY, "demo")

    def __repr__(self) -> str:
        return f"HashKey(source={self.source!r}, id={self.key_id})"  # never the secret itself

    def __reduce__(self) -> tuple[Callable[..., HashKey], tuple[bytes, str]]:
        return (HashKey, (self._secret, self.source))

    def digest(self, namespace: str, value: str) -> bytes:
        """HMAC-SHA256 of `value` within `namespace` (the same UID hashes differently as a study and a series).

        The value is hashed as the bytes it came from: a file name that is not valid UTF-8 reaches Python with
        surrogate escapes, which plain UTF-8 cannot encode (valid text hashes exactly as with `str.encode()`).
        """
        data = f"{namespace}\x00{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def hash(self, namespace: str, value: str, length: int = 20) -> str:
        """A hex keyed hash, `length` characters long (20 hex = 80 bits: no collisions at PACS scale)."""
        return self.digest(namespace, value).hex()[:length]

    def uid(self, value: str) -> str:
        """A valid DICOM UID (`2.25.<integer>`) standing in for `value`, stable under the same secret."""
        return "2.25." + str(int.from_bytes(self.digest("uid", value)[:16], "big"))

    @property
    def key_id(self) -> str:
        """A public fingerprint of the secret: a change of secret invalidates every key, so runs must not mix."""
        return self.hash("key-id", "", 12)


def burned_in(headers: Sequence[Dataset], use_rules: bool) -> str | None:
    """Why a series' pixels may carry burned-in text (names, IDs, dates), or None.

    Args:
        headers: The headers of the series' instances (the rules look at the first).
        use_rules: Also apply the `deid` package's header rules (RSNA CTP filters) beyond BurnedInAnnotation.

    Returns:
        A message naming the attribute or the rule's group, never a header value.
    """
    marked = sum(str(h.get("BurnedInAnnotation", "") or "").strip().upper() == "YES" for h in headers)
    if marked:
        return f"BurnedInAnnotation = YES in {marked} of {len(headers)} files"
    if not use_rules or not headers:
        return None
    result = _deid_recipe_check(headers[0])
    return f"deid rule set flags it ({result})" if result else None


@functools.cache
def _deid_recipe() -> object:
    from deid.config import DeidRecipe

    return DeidRecipe("dicom")  # the package's default recipe: its %filter sections are the CTP pixel rules


def _deid_recipe_check(header: Dataset) -> str:
    from deid.dicom.pixels.detect import has_burned_pixels

    result = has_burned_pixels(header, deid=_deid_recipe())
    if not result["flagged"]:
        return ""
    groups = {str(r["group"]) for r in result["results"]}
    return "" if "whitelist" in groups else ", ".join(sorted(groups))  # a whitelist match marks a known-clean image


def deidentify(ds: Dataset, key: HashKey, patient_key: str = "") -> Dataset:
    """Return a de-identified copy of `ds` (the input is never modified).

    Args:
        ds: A header, typically read with `stop_before_pixels`.
        key: The hashing key for UIDs.
        patient_key: Pseudonym put in PatientID (lets a researcher split by patient); empty leaves it empty.

    Returns:
        A new dataset with the basic profile applied, private and free-text values removed, UIDs replaced.
    """
    out = Dataset()
    _copy_clean(ds, out, key)
    out.PatientID = patient_key
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "PS3.15 basic profile; keyed-hash UIDs; free text removed"
    return out


def _copy_clean(src: Dataset, dst: Dataset, key: HashKey) -> None:
    for elem in src:
        if elem.tag.is_private or elem.tag.group in (0x0002,) or 0x5000 <= elem.tag.group <= 0x60FF:
            continue  # private tags, file meta, curves and overlays: out
        if elem.tag == 0x7FE00010:
            continue  # pixels never belong to a header export
        action = BASIC_PROFILE.get(elem.keyword)
        if action == "X":
            continue
        if action == "Z":
            dst.add_new(elem.tag, elem.VR, None)
        elif action == "D":
            dst.add_new(elem.tag, elem.VR, DUMMY.get(elem.VR, "REMOVED"))
        elif elem.VR == "UI":
            dst.add_new(elem.tag, "UI", _hash_uid_value(elem.value, key))
        elif elem.VR == "SQ":
            items = []
            for item in elem.value:
                clean = Dataset()
                _copy_clean(item, clean, key)
                items.append(clean)
            dst.add_new(elem.tag, "SQ", items)
        elif elem.VR in FREE_TEXT_VRS and elem.keyword not in KEEP_TEXT:
            continue
        elif action == "U":
            dst.add_new(elem.tag, elem.VR, _hash_uid_value(elem.value, key))
        else:
            dst.add_new(elem.tag, elem.VR, elem.value)


def _hash_uid_value(value: object, key: HashKey) -> object:
    if value is None or value == "":
        return value
    if isinstance(value, str):
        return value if value.startswith(STANDARD_UID_ROOT) else key.uid(value)
    return [v if str(v).startswith(STANDARD_UID_ROOT) else key.uid(str(v)) for v in value]  # type: ignore[attr-defined]
