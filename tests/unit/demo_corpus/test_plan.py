"""Plans (no pixels): labels, protocol independence, patients, layout and reports."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from demo_corpus import CLASSES, DemoCorpusConfig
from demo_corpus.plan import CorpusPlan, plan_corpus
from demo_corpus.vocabulary import IMAGING_KINDS

MENTION = {
    "stroke": ("infarct", "stroke"),
    "glioma": ("glioma", "glial"),
    "meningioma": ("meningioma",),
    "metastasis": ("metasta",),
    "white_matter_hyperintensity": ("white matter hyperintensit", "microvascular", "small vessel"),
    "microbleeds": ("microbleed", "microhemorrhage"),
    "t2_shine_through": ("shine-through",),
    "t1_hyperintensity": ("t1 hyperintens",),
}
NEGATION = ("no ", "not ", "without")


@pytest.fixture(scope="module")
def sample_plan() -> CorpusPlan:
    """A moderate sample of planned studies (no rendering)."""
    return plan_corpus(DemoCorpusConfig(seed=5, n_train_studies=240, n_benchmark_studies=50))


def _kinds(plan: CorpusPlan) -> list[tuple[str, ...]]:
    return [tuple(s.kind for s in st.series) for st in plan.studies]


def test_series_set_does_not_depend_on_the_label() -> None:
    base = DemoCorpusConfig(seed=9, n_train_studies=40, n_benchmark_studies=0, follow_up_share=0.0)
    skewed = DemoCorpusConfig.from_dict({**base.to_dict(), "train_class_shares": [0.0, 0.0, 0.0, 0.5, 0.5]})
    a, b = plan_corpus(base), plan_corpus(skewed)
    assert [s.label for s in a.studies] != [s.label for s in b.studies]
    assert _kinds(a) == _kinds(b)  # same protocol stream, whatever the label


def test_series_kind_rates_are_flat_across_classes(sample_plan: CorpusPlan) -> None:
    by_class: dict[str, list[frozenset[str]]] = defaultdict(list)
    for study in sample_plan.studies:
        by_class[study.label].append(study.kinds)
    for kind in IMAGING_KINDS:
        overall = np.mean([kind in k for ks in by_class.values() for k in ks])
        for label, kinds in by_class.items():
            rate = np.mean([kind in k for k in kinds])
            assert abs(rate - overall) < 0.2, (kind, label, rate, overall)


def test_labels_follow_the_configured_shares(sample_plan: CorpusPlan) -> None:
    train = Counter(s.label for s in sample_plan.part("train"))
    assert train == {"normal": 72, "stroke": 42, "glioma": 42, "meningioma": 42, "metastasis": 42}
    bench = Counter(s.label for s in sample_plan.part("benchmark"))
    assert set(bench) == set(CLASSES)
    assert max(bench.values()) - min(bench.values()) <= 1
    for study in sample_plan.studies:
        primary = [f.name for f in study.findings if f.name in CLASSES]
        assert primary == ([] if study.label == "normal" else [study.label])
        assert 2 <= sum(1 for s in study.series if not s.defect) <= 10


def test_patients_are_disjoint_between_parts_and_ids_unique(sample_plan: CorpusPlan) -> None:
    train = {s.patient.patient_id for s in sample_plan.part("train")}
    bench = {s.patient.patient_id for s in sample_plan.part("benchmark")}
    assert not train & bench
    assert len({s.accession for s in sample_plan.studies}) == len(sample_plan.studies)
    assert len({s.uid for s in sample_plan.studies}) == len(sample_plan.studies)
    follow_ups = [s for s in sample_plan.part("train") if s.prior >= 0]
    assert follow_ups, "some patients have several studies"
    for s in follow_ups:
        prior = sample_plan.part("train")[s.prior]
        assert s.patient == prior.patient
        assert s.date > prior.date
        assert s.label == prior.label


def test_export_layout_is_messy_but_unambiguous(sample_plan: CorpusPlan) -> None:
    paths = [p for s in sample_plan.studies for se in s.series for p in se.paths]
    paths += [d.path for s in sample_plan.studies for d in s.defects]
    assert len(paths) == len(set(paths))
    folders: dict[str, set[str]] = defaultdict(set)
    batches: dict[str, set[str]] = defaultdict(set)
    for s in sample_plan.studies:
        for p in (p for se in s.series for p in se.paths):
            folders[p.rsplit("/", 1)[0]].add(s.uid)
            batches[s.uid].add(p.split("/")[2])
    assert any(len(studies) > 1 for studies in folders.values()), "a folder holds several studies"
    assert any(len(b) > 1 for b in batches.values()), "a study spans two export folders"
    assert any(re.search(r"/DICOM/PA\d{6}/ST\d{6}/SE\d{6}/IM\d{6}$", p) for p in paths)
    assert any(p.endswith(".dcm") for p in paths)
    assert any("." not in p.rsplit("/", 1)[1] for p in paths)


def _sentences(report: str) -> list[str]:
    body = re.split(r"(?i)^findings:\s*$", report, maxsplit=1, flags=re.MULTILINE)[-1]
    return [s.strip().lower() for s in re.split(r"(?<=\.)\s+|\n", body) if s.strip()]


def test_reports_mention_every_finding_and_never_assert_absent_ones(sample_plan: CorpusPlan) -> None:
    negated = 0
    for study in sample_plan.studies:
        if not study.report:
            continue
        text = study.report.lower()
        present = {f.name for f in study.findings}
        for name in present:
            assert any(word in text for word in MENTION[name]), (name, study.report)
        for name in set(CLASSES[1:]) - present:
            for sentence in _sentences(study.report):
                if any(word in sentence for word in MENTION[name]):
                    assert any(n in sentence for n in NEGATION), (name, sentence)
                    negated += 1
        assert set(study.uncertain) <= present
    assert negated > 50


def test_reports_vary_and_carry_identifiers(sample_plan: CorpusPlan) -> None:
    reports = [s for s in sample_plan.studies if s.report]
    assert len({s.report.splitlines()[-1] for s in reports if s.report}) > 20
    assert any(s.patient.patient_id in (s.report or "") for s in reports)
    assert any(s.patient.family.title() in (s.report or "") or s.patient.family in (s.report or "") for s in reports)
    assert any(re.search(r"\(\d{3}\) 555-01\d\d", s.report or "") for s in reports)
    assert any(s.uncertain for s in reports)
