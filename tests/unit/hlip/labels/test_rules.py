"""The rules backend on sentences written the way radiologists write them (not only the demo's templates)."""

from __future__ import annotations

import pytest

from hlip.labels.rules import RulesLabeler
from hlip.labels.table import LABEL_COLUMNS, check_label_table, to_matrix

BRAIN_CASES = [
    # (report, finding, expected value)
    ("Acute infarct in the left MCA territory.", "stroke", 1),
    ("There is an area of restricted diffusion in the right frontal lobe with low ADC values.", "stroke", 1),
    ("No evidence of acute ischemia.", "stroke", 0),
    ("No restricted diffusion to suggest acute infarct.", "stroke", 0),
    ("Acute ischemia cannot be excluded.", "stroke", -1),
    ("Acute infarct is not excluded.", "stroke", -1),
    ("Possible acute to subacute infarct in the left PCA territory.", "stroke", -1),
    ("Findings: History of prior stroke. Otherwise normal.", "stroke", 0),
    ("Glioblastoma of the right temporal lobe.", "glioma", 1),
    ("Infiltrative mass, favor low-grade glial neoplasm.", "glioma", 1),
    ("Findings are concerning for a high-grade glial neoplasm.", "glioma", -1),
    ("Differential includes astrocytoma and lymphoma.", "glioma", -1),
    ("Family history of meningioma.", "meningioma", 0),
    ("Extra-axial mass, possibly a meningioma.", "meningioma", -1),
    ("The previously seen meningioma has been resected.", "meningioma", 0),
    ("Multiple enhancing lesions, consistent with metastatic disease.", "metastasis", 1),
    ("Cannot exclude metastatic disease.", "metastasis", -1),
    ("Ring-enhancing lesions: metastases versus abscesses.", "metastasis", -1),
    ("Recommend follow-up MRI to evaluate for metastases.", "metastasis", 0),
    ("Interval resolution of the left frontal metastasis.", "metastasis", 0),
    ("There is no evidence of metastatic disease; however, a small meningioma is noted.", "metastasis", 0),
    ("There is no evidence of metastatic disease; however, a small meningioma is noted.", "meningioma", 1),
    ("Several small white matter hyperintensities, Fazekas grade 1.", "white_matter_hyperintensity", 1),
    ("Mild chronic small vessel ischemic change.", "white_matter_hyperintensity", 1),
    ("Scattered cerebral microbleeds on SWI.", "microbleeds", 1),
    ("Microbleeds are absent.", "microbleeds", 0),
    ("No acute infarct, hemorrhage or mass.", "hemorrhage", 0),
    ("No hydrocephalus. Mild ventriculomegaly.", "hydrocephalus", 1),
    ("Surrounding vasogenic edema with 4 mm of midline shift.", "mass_effect", 1),
]

MIMICS = [
    # T2 shine-through: bright on DWI without low ADC is not an infarct.
    (
        "Focus of DWI hyperintensity in the left occipital lobe without corresponding ADC hypointensity, consistent "
        "with T2 shine-through from a chronic lesion; no restricted diffusion.\nImpression: T2 shine-through in the "
        "left occipital lobe, not an acute infarct.",
        {"t2_shine_through": 1, "stroke": 0},
    ),
    # Intrinsic T1 brightness is not enhancement.
    (
        "Small focus of intrinsic T1 hyperintensity in the right thalamus, unchanged on post-contrast images, without "
        "enhancement; may reflect blood products or proteinaceous content.",
        {"t1_hyperintensity": 1, "enhancement": 0, "hemorrhage": -1},
    ),
]


@pytest.mark.parametrize(("report", "finding", "expected"), BRAIN_CASES)
def test_brain_sentences(brain_rules: RulesLabeler, report: str, finding: str, expected: int) -> None:
    matrix = to_matrix(brain_rules.label({"s": report}), brain_rules.findings.names)
    assert matrix.loc["s", finding] == expected


@pytest.mark.parametrize(("report", "expected"), MIMICS)
def test_mimics_need_both_signs(brain_rules: RulesLabeler, report: str, expected: dict[str, int]) -> None:
    matrix = to_matrix(brain_rules.label({"s": report}), brain_rules.findings.names)
    assert {k: int(matrix.loc["s", k]) for k in expected} == expected


@pytest.mark.parametrize(
    "header", ["Indication: Rule out stroke.", "CLINICAL HISTORY: Acute stroke?", "COMPARISON: MRI showing infarct."]
)
def test_questions_and_priors_are_not_findings(brain_rules: RulesLabeler, header: str) -> None:
    report = f"EXAM: MRI brain for stroke\n{header}\n\nFINDINGS:\nNormal flow voids.\n\nIMPRESSION:\nUnremarkable."
    table = brain_rules.label({"s": report})
    assert to_matrix(table, ["stroke"]).loc["s", "stroke"] == 0
    assert (table["evidence"] == "").all()


def test_table_has_every_finding_and_evidence(brain_rules: RulesLabeler) -> None:
    reports = {
        "k1": "FINDINGS:\nThere is a 3 cm meningioma along the falx.\n\nIMPRESSION:\nMeningioma.",
        "k2": "IMPRESSION:\nNormal MRI of the brain.",
    }
    table = brain_rules.label(reports)
    assert list(table.columns) == list(LABEL_COLUMNS)
    assert set(table["backend"]) == {"rules"}
    check_label_table(table, brain_rules.findings.names)
    row = table[(table.study_key == "k1") & (table.finding == "meningioma")].iloc[0]
    assert row.value == 1
    assert row.evidence == "There is a 3 cm meningioma along the falx."
    assert (table[table.study_key == "k2"]["value"] == 0).all()


def test_pyrush_debug_lines_are_silenced(brain_rules: RulesLabeler, capfd: pytest.CaptureFixture[str]) -> None:
    brain_rules.label({"s": "Acute infarct. No hemorrhage."})
    captured = capfd.readouterr()
    assert "DEBUG" not in captured.err + captured.out


CHEST_CASES = [
    ("Bilateral pleural effusions, larger on the right.", "pleural_effusion", 1),
    ("No pleural or pericardial effusion.", "pericardial_effusion", 0),
    ("Centrilobular emphysema in both upper lobes.", "emphysema", 1),
    ("A 4 mm nodule in the right lower lobe.", "lung_nodule", 1),
    ("Ground-glass opacities in the left lower lobe, possibly infectious.", "lung_opacity", 1),
    ("Consolidation cannot be excluded in the lingula.", "consolidation", -1),
    ("Coronary artery calcifications are noted.", "coronary_artery_wall_calcification", 1),
    ("No mediastinal lymphadenopathy.", "lymphadenopathy", 0),
    ("Small sliding hiatal hernia.", "hiatal_hernia", 1),
    ("Interlobular septal thickening and crazy paving in both lungs.", "interlobular_septal_thickening", 1),
]


@pytest.mark.parametrize(("report", "finding", "expected"), CHEST_CASES)
def test_chest_sentences(chest_rules: RulesLabeler, report: str, finding: str, expected: int) -> None:
    matrix = to_matrix(chest_rules.label({"s": report}), chest_rules.findings.names)
    assert matrix.loc["s", finding] == expected


def test_worker_processes_give_the_table_one_process_gives(brain_rules: RulesLabeler) -> None:
    """Reports cut into chunks for a process pool come back in input order with the same labels as in one process."""
    import dataclasses
    import random

    from hlip.labels import rules

    sentences = [case[0] for case in BRAIN_CASES] + [mimic[0] for mimic in MIMICS]
    rng = random.Random(7)
    count = 2 * rules.CHUNK + 37  # three chunks, the last one short
    reports = {f"study-{rng.randrange(10**9):09d}-{i}": " ".join(rng.sample(sentences, 3)) for i in range(count)}
    serial = brain_rules.label(reports)
    pooled = RulesLabeler(brain_rules.findings, dataclasses.replace(brain_rules.config, workers=2)).label(reports)
    assert list(pooled["study_key"].drop_duplicates()) == list(reports)  # input order, not completion order
    assert pooled.equals(serial)
    assert (serial["value"] != 0).sum() > count  # the rules found findings: the comparison is not of empty tables


@pytest.mark.parametrize("field", ["workers", "batch_size"])
def test_rules_options_below_one_are_refused(field: str) -> None:
    from hlip.labels.rules import RulesConfig

    with pytest.raises(ValueError, match=f"label.rules.{field}"):
        RulesConfig(**{field: 0})
