"""Fake identities: imaging sites with their scanners, patients and physicians.

Every name, number and address here is invented (phone numbers use the 555-01xx range reserved for fiction);
they exist so that de-identification has real-looking protected health information to remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FAMILY = (
    "HALVORSEN",
    "OKAFOR",
    "MARCHETTI",
    "DUBOIS",
    "KOWALSKI",
    "NAKAMURA",
    "FITZGERALD",
    "OYELARAN",
    "LINDQVIST",
    "BRENNAN",
    "SANTOS",
    "PETROVA",
    "ABERNATHY",
    "CHEN",
    "MORALES",
    "VANCE",
    "IVERSEN",
    "GALLAGHER",
    "RAHMAN",
    "WHITCOMB",
    "ESPOSITO",
    "NOVAK",
    "DELACROIX",
    "TANAKA",
    "OKONKWO",
    "BAPTISTE",
    "SORENSEN",
    "KRAUSE",
    "MCALLISTER",
    "DESAI",
    "FERREIRA",
    "HOLLOWAY",
    "ZIELINSKI",
    "ARCHER",
    "BELLAMY",
    "CASTILLO",
    "DUNMORE",
    "EKSTROM",
    "FAIRWEATHER",
    "GRANGER",
    "HUXLEY",
    "INGRAM",
    "JANSSEN",
    "KILBRIDE",
    "LOCKWOOD",
    "MERRIWEATHER",
)
_GIVEN_F = (
    "MARIT",
    "ADAEZE",
    "GIULIA",
    "CAMILLE",
    "AGNIESZKA",
    "YUKI",
    "SIOBHAN",
    "FOLAKE",
    "INGRID",
    "NORA",
    "LUCIA",
    "ELENA",
    "HARRIET",
    "MEI",
    "PALOMA",
    "ROSALIND",
    "ASTRID",
    "MAEVE",
    "FARHANA",
    "EDITH",
)
_GIVEN_M = (
    "TORBEN",
    "CHIDI",
    "MATTEO",
    "LUCIEN",
    "TOMASZ",
    "HIROSHI",
    "DECLAN",
    "KUNLE",
    "BJORN",
    "PATRICK",
    "RAFAEL",
    "DMITRI",
    "WALLACE",
    "WEI",
    "JAVIER",
    "ELLIOT",
    "ANDERS",
    "CORMAC",
    "IMRAN",
    "GILBERT",
)
_STREETS = (
    "Maple Street",
    "Harbour Road",
    "Old Mill Lane",
    "Juniper Avenue",
    "Kestrel Way",
    "Quarry Hill",
    "Willow Crescent",
    "Foundry Row",
    "Lantern Court",
    "Bramble Drive",
)
_TOWNS = ("Eastbrook", "Millhaven", "North Calder", "Wrenfield", "Port Ashby", "Greyhollow", "Larkspur")


@dataclass(frozen=True)
class Site:
    """An imaging site (institution) and its MR scanner."""

    institution: str
    address: str
    vendor: str
    model: str
    field_strength: float
    station: str
    serial: str
    mrn_prefix: str
    accession_prefix: str
    department: str


SITES: tuple[Site, ...] = (
    Site(
        "NORTHGATE GENERAL HOSPITAL",
        "1 Infirmary Square, Millhaven",
        "SIEMENS",
        "Skyra",
        3.0,
        "MRC40712",
        "40712",
        "NG",
        "NGA",
        "Neuroradiology",
    ),
    Site(
        "St. Brigid Medical Center",
        "220 Convent Road, Wrenfield",
        "GE MEDICAL SYSTEMS",
        "SIGNA Architect",
        3.0,
        "SBMCMR2",
        "0000000AR7731",
        "",
        "SB",
        "Radiology",
    ),
    Site(
        "Lakeside Imaging Clinic",
        "48 Shore Drive, Port Ashby",
        "Philips",
        "Ingenia",
        1.5,
        "LIC-MR-1",
        "45117",
        "LIC",
        "L",
        "MRI",
    ),
    Site(
        "RIVERSIDE UNIVERSITY HOSPITAL",
        "Riverside Campus, Greyhollow",
        "SIEMENS",
        "Aera",
        1.5,
        "AWP66021",
        "66021",
        "RUH",
        "RA",
        "Diagnostic Imaging",
    ),
    Site(
        "Eastbrook Community Hospital",
        "9 Kestrel Way, Eastbrook",
        "GE MEDICAL SYSTEMS",
        "Optima MR450w",
        1.5,
        "EBCH_MR",
        "000000MR4501",
        "EB",
        "ECH",
        "Imaging",
    ),
)


@dataclass(frozen=True)
class Patient:
    """A fake patient; ``patient_id`` is the site's medical record number (MRN)."""

    patient_id: str
    family: str
    given: str
    sex: str
    birth_date: str  # YYYYMMDD
    address: str
    phone: str

    @property
    def dicom_name(self) -> str:
        """PatientName in DICOM person-name form."""
        return f"{self.family}^{self.given}"

    @property
    def display_name(self) -> str:
        """The name as a report writes it."""
        return f"{self.given.title()} {self.family.title()}"


def phone(rng: np.random.Generator) -> str:
    """A fictional telephone number."""
    return f"({rng.integers(201, 990)}) 555-01{rng.integers(0, 100):02d}"


def sample_patient(rng: np.random.Generator, site: Site, taken: set[str]) -> Patient:
    """A new patient of a site, with an MRN not in ``taken`` (the set is updated)."""
    while True:
        mrn = f"{site.mrn_prefix}{rng.integers(10**6, 10**7)}"
        if mrn not in taken:
            taken.add(mrn)
            break
    sex = "F" if rng.random() < 0.5 else "M"
    given = str(rng.choice(_GIVEN_F if sex == "F" else _GIVEN_M))
    year, month, day = int(rng.integers(1932, 2003)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    address = f"{rng.integers(2, 400)} {rng.choice(_STREETS)}, {rng.choice(_TOWNS)}"
    return Patient(mrn, str(rng.choice(_FAMILY)), given, sex, f"{year:04d}{month:02d}{day:02d}", address, phone(rng))


def physician(rng: np.random.Generator) -> str:
    """A physician's name in DICOM person-name form (``FAMILY^GIVEN^^Dr.``)."""
    given = str(rng.choice(_GIVEN_F + _GIVEN_M))
    return f"{rng.choice(_FAMILY)}^{given}^^Dr."


def operator(rng: np.random.Generator) -> str:
    """A technologist's name, as scanners record it (often initials)."""
    family, given = str(rng.choice(_FAMILY)), str(rng.choice(_GIVEN_F + _GIVEN_M))
    return f"{given[0]}{family[0]}" if rng.random() < 0.4 else f"{family}^{given}"


def readable_physician(name: str) -> str:
    """``FAMILY^GIVEN^^Dr.`` as a report writes it: ``Dr. Given Family``."""
    parts = name.split("^")
    return f"Dr. {parts[1].title()} {parts[0].title()}"
