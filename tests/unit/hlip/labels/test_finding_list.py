from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from demo_corpus.vocabulary import FINDINGS as DEMO_FINDINGS
from hlip.labels.finding_list import FindingListError, available_finding_lists, load_findings

CT_RATE = [
    "medical_material",
    "arterial_wall_calcification",
    "cardiomegaly",
    "pericardial_effusion",
    "coronary_artery_wall_calcification",
    "hiatal_hernia",
    "lymphadenopathy",
    "emphysema",
    "atelectasis",
    "lung_nodule",
    "lung_opacity",
    "pulmonary_fibrotic_sequela",
    "pleural_effusion",
    "mosaic_attenuation_pattern",
    "peribronchial_thickening",
    "consolidation",
    "bronchiectasis",
    "interlobular_septal_thickening",
]


def test_packaged_lists_load_with_versions_in_file_order() -> None:
    assert set(available_finding_lists()) >= {"brain_mri", "chest_ct"}
    brain, chest = load_findings("brain_mri"), load_findings("chest_ct")
    assert brain.version
    assert chest.version
    assert brain.names[:8] == DEMO_FINDINGS  # the demo ground truth's columns come first, in its order
    assert {"hemorrhage", "hydrocephalus", "edema", "mass_effect"} <= set(brain.names)
    assert list(chest.names) == CT_RATE
    for finding in (*brain.findings, *chest.findings):
        assert finding.description, finding.name
        assert finding.terms, finding.name


def test_terms_cover_radiologist_wording() -> None:
    brain = load_findings("brain_mri")
    assert {"glioblastoma", "astrocytoma", "high-grade glial neoplasm"} <= set(brain["glioma"].terms)
    assert {"infarct", "acute ischemia", "restricted diffusion"} <= set(brain["stroke"].terms)
    assert {"metastases", "metastatic disease"} <= set(brain["metastasis"].terms)


def test_load_by_path_and_subset(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({"name": "mini", "version": "2", "findings": [
        {"name": "a", "description": "A", "terms": ["alpha"]},
        {"name": "b", "description": "B", "terms": ["beta"], "patterns": ["bet+a"]},
    ]}))  # fmt: skip
    mini = load_findings(path)
    assert mini.names == ("a", "b")
    assert mini["b"].patterns == ("bet+a",)
    assert mini.subset(["b"]).names == ("b",)
    assert mini.fingerprint != mini.subset(["b"]).fingerprint
    with pytest.raises(KeyError, match="'c' is not in list"):
        mini["c"]


@pytest.mark.parametrize(
    ("findings", "message"),
    [
        ([{"name": "a", "terms": ["x"]}, {"name": "a", "terms": ["y"]}], "duplicate finding name"),
        ([{"name": "Bad Name", "terms": ["x"]}], "snake_case"),
        ([{"name": "a"}], "at least one term"),
        ([{"name": "a", "terms": ["x"], "colour": "red"}], "unknown key"),
        ([{"name": "a", "patterns": ["("]}], "bad pattern"),
        ([], "non-empty list"),
    ],
)
def test_malformed_lists_are_rejected_with_the_reason(tmp_path: Path, findings: list, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "version": "1", "findings": findings}))
    with pytest.raises(FindingListError, match=message):
        load_findings(path)


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(FindingListError, match="available"):
        load_findings("knee_xray")
    with pytest.raises(FindingListError, match="not found"):
        load_findings("/nonexistent/list.yaml")
