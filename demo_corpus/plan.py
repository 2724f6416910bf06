"""The corpus plan: every study, series, file path, report and defect, as pure data, before any pixel exists.

Planning is cheap (no rendering) and deterministic: each study draws from its own generators keyed by
``(seed, part, index, stream)``, so a study's plan never depends on how many workers render it, and the series
set (stream ``protocol``) is drawn apart from the findings (stream ``findings``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom.uid import generate_uid

from demo_corpus.anatomy import load_template
from demo_corpus.config import DemoCorpusConfig
from demo_corpus.defect import DefectPlan, FileRef, defect_counts, plan_defects
from demo_corpus.finding import PLANNERS, Finding
from demo_corpus.geometry import Pose, sample_pose
from demo_corpus.identity import SITES, Patient, operator, physician, sample_patient
from demo_corpus.layout import ExportLayout, SeriesKey, StudyKey
from demo_corpus.protocol import SeriesPlan, plan_protocol
from demo_corpus.report import ReportContext, write_report
from demo_corpus.vocabulary import CLASSES, PARTS
from hlip.progress import ProgressReporter

_STREAMS = {"identity": 0, "protocol": 1, "findings": 2, "report": 3, "part": 4, "tags": 5}
_PLANNING_RESOLUTION = 2  # lesions are placed on the 2 mm template whatever the rendering resolution


def stream(seed: int, part: str, index: int, name: str) -> np.random.Generator:
    """The generator of one stream of one study (``index = -1`` for part-level draws)."""
    return np.random.default_rng([seed, PARTS.index(part), index + 1, _STREAMS[name]])


def uid(seed: int, *parts: object) -> str:
    """A deterministic DICOM UID from the seed and any labels."""
    return generate_uid(entropy_srcs=["|".join(["hlip-demo", str(seed), *(str(p) for p in parts)])])


@dataclass(frozen=True)
class StudyPlan:
    """One study, fully decided.

    Attributes:
        part: ``train`` or ``benchmark``.
        index: Position within the part.
        label: Primary class (`vocabulary.CLASSES`).
        findings: Rendered findings (the primary one first).
        uncertain: Findings the report words with uncertainty.
        patient: Who.
        site: Index into `identity.SITES`.
        pose: Head position in the scanner.
        series: The series, in acquisition order (a ``short_series`` defect included).
        defects: Bad files this study's writer makes.
        uid: StudyInstanceUID.
        frame_uid: FrameOfReferenceUID shared by the session's series.
        accession: AccessionNumber.
        date: StudyDate (YYYYMMDD).
        time: StudyTime (HHMMSS).
        referring: ReferringPhysicianName.
        radiologist: Who signs the report.
        operator: OperatorsName.
        report: Report text; None when the RIS has no report for this study.
        report_date: Date of the report (YYYY-MM-DD).
        prior: Index of the earlier study of the same patient, or -1.
        seed: The corpus seed (the writer's own random streams derive from it).
    """

    part: str
    index: int
    label: str
    findings: tuple[Finding, ...]
    uncertain: tuple[str, ...]
    patient: Patient
    site: int
    pose: Pose
    series: tuple[SeriesPlan, ...]
    defects: tuple[DefectPlan, ...]
    uid: str
    frame_uid: str
    accession: str
    date: str
    time: str
    referring: str
    radiologist: str
    operator: str
    report: str | None
    report_date: str
    prior: int = -1
    seed: int = 0

    @property
    def kinds(self) -> frozenset[str]:
        """Kinds of the good series."""
        return frozenset(s.kind for s in self.series if not s.defect)


@dataclass(frozen=True)
class CorpusPlan:
    """Both parts of the corpus, plus the RIS reports that match no study."""

    config: DemoCorpusConfig
    studies: tuple[StudyPlan, ...]
    orphan_reports: tuple[tuple[str, str, str, str], ...]  # (part, accession, patient id, text)

    def part(self, name: str) -> tuple[StudyPlan, ...]:
        """Studies of one part."""
        return tuple(s for s in self.studies if s.part == name)


def _labels(rng: np.random.Generator, part: str, n: int, cfg: DemoCorpusConfig) -> list[str]:
    """Exact class counts (largest remainder), shuffled: train by the configured shares, benchmark balanced."""
    shares = np.asarray(cfg.train_class_shares if part == "train" else [1 / len(CLASSES)] * len(CLASSES))
    raw = shares * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    labels = [c for c, k in zip(CLASSES, counts, strict=True) for _ in range(k)]
    return [labels[i] for i in rng.permutation(n)]


def _date_after(rng: np.random.Generator, start: str, lo: int, hi: int) -> str:
    day = np.datetime64(f"{start[:4]}-{start[4:6]}-{start[6:]}") + int(rng.integers(lo, hi))
    return str(day).replace("-", "")


def _findings(rng: np.random.Generator, label: str, kinds: frozenset[str]) -> list[Finding]:
    """Primary finding by label; mimics and incidentals by chance, only where some series could show them."""
    template = load_template(_PLANNING_RESOLUTION)
    out = [] if label == "normal" else [PLANNERS[label](rng, template)]
    chances = {
        "white_matter_hyperintensity": 0.25 if kinds & {"flair", "t2"} else 0.0,
        "microbleeds": 0.35 if "swi" in kinds else 0.0,
        "t2_shine_through": 0.15 if {"dwi", "adc"} <= kinds else 0.0,
        "t1_hyperintensity": 0.15 if "t1" in kinds else 0.0,
    }
    for name, p in chances.items():
        if rng.random() < p:
            out.append(PLANNERS[name](rng, template))
    return out


def _study(
    cfg: DemoCorpusConfig, part: str, index: int, label: str, prior: StudyPlan | None, taken: set[str]
) -> StudyPlan:
    ident = stream(cfg.seed, part, index, "identity")
    site_index = prior.site if prior else int(ident.integers(len(SITES)))
    site = SITES[site_index]
    patient = prior.patient if prior else sample_patient(ident, site, taken)
    date = _date_after(ident, prior.date, 40, 700) if prior else _date_after(ident, "20160104", 0, 2900)
    pose = sample_pose(ident)
    series = plan_protocol(stream(cfg.seed, part, index, "protocol"), site, pose, cfg)
    series = tuple(replace(s, uid=uid(cfg.seed, part, index, "series", s.number)) for s in series)
    kinds = frozenset(s.kind for s in series)
    found = stream(cfg.seed, part, index, "findings")
    if prior and prior.label != "normal":  # a follow-up shows the same lesion, grown or shrunk a little
        findings = [prior.findings[0].scaled(float(found.uniform(0.85, 1.15))), *_findings(found, "normal", kinds)]
    else:
        findings = _findings(found, label, kinds)
    accession = ""
    while not accession or accession in taken:  # accession numbers are unique over the corpus
        accession = f"{site.accession_prefix}{ident.integers(10**7, 10**8)}"
    taken.add(accession)
    referring, radiologist = physician(ident), physician(ident)
    ctx = ReportContext(patient, kinds, date, referring, radiologist, accession, prior.date if prior else None)
    report, uncertain = write_report(stream(cfg.seed, part, index, "report"), ctx, findings)
    hour, minute = int(ident.integers(7, 21)), int(ident.integers(0, 60))
    return StudyPlan(
        part=part,
        index=index,
        label=label,
        findings=tuple(findings),
        uncertain=uncertain,
        patient=patient,
        site=site_index,
        pose=pose,
        series=series,
        defects=(),
        uid=uid(cfg.seed, part, index, "study"),
        frame_uid=uid(cfg.seed, part, index, "frame"),
        accession=accession,
        date=date,
        time=f"{hour:02d}{minute:02d}{int(ident.integers(0, 60)):02d}",
        referring=referring,
        radiologist=radiologist,
        operator=operator(ident),
        report=report,
        report_date=str(np.datetime64(f"{date[:4]}-{date[4:6]}-{date[6:]}") + int(ident.integers(0, 3))),
        prior=prior.index if prior else -1,
        seed=cfg.seed,
    )


def _short_series(rng: np.random.Generator, study: StudyPlan, seed: int) -> StudyPlan:
    """Append an aborted acquisition: a copy of one image series cut to one or two slices."""
    images = [s for s in study.series if s.grids and s.kind not in ("localizer", "dwi", "adc")]
    base = images[int(rng.integers(len(images)))] if images else study.series[-1]
    grid = replace(base.grids[0], n_slices=int(rng.integers(1, 3)))
    number = max(s.number for s in study.series) + 1
    short = replace(
        base,
        number=number,
        grids=(grid,),
        multiframe=False,
        defect="short_series",
        uid=uid(seed, study.part, study.index, "series", number),
    )
    return replace(study, series=(*study.series, short))


def _plan_part(
    cfg: DemoCorpusConfig, part: str, n: int, taken: set[str], bar: ProgressReporter
) -> tuple[list[StudyPlan], list[tuple[str, str, str, str]]]:
    rng = stream(cfg.seed, part, -1, "part")
    labels = _labels(rng, part, n, cfg)
    studies: list[StudyPlan] = []
    for i, label in enumerate(bar.track(labels)):
        prior = None
        if part == "train" and rng.random() < cfg.follow_up_share:
            earlier = [s for s in studies if s.label == label and s.prior < 0]
            prior = earlier[int(rng.integers(len(earlier)))] if earlier else None
        studies.append(_study(cfg, part, i, label, prior, taken))
    counts = defect_counts(rng, sum(s.n_files for st in studies for s in st.series), cfg.bad_file_share)
    for i in rng.choice(n, size=min(n, counts["short_series"]), replace=False) if n else []:
        studies[int(i)] = _short_series(rng, studies[int(i)], cfg.seed)
    layout = ExportLayout(f"{part}/dicom", rng)
    keys = [
        StudyKey(
            st.index,
            st.uid,
            st.patient.patient_id,
            st.patient.dicom_name,
            st.date,
            tuple(SeriesKey(st.index, s.number, s.uid, s.description, s.n_files) for s in st.series),
        )
        for st in studies
    ]
    paths = layout.assign(keys)
    studies = [
        replace(st, series=tuple(replace(s, paths=paths[(st.index, s.number)]) for s in st.series)) for st in studies
    ]
    refs = [
        FileRef(st.index, s.number, s.kind, s.multiframe, p)
        for st in studies
        for s in st.series
        if not s.defect
        for p in s.paths
    ]
    defects = plan_defects(rng, refs, layout, counts) if refs else []
    studies = [replace(st, defects=tuple(d for d in defects if d.study == st.index)) for st in studies]
    orphans: list[tuple[str, str, str, str]] = []
    if part == "train" and cfg.report_anomalies and n >= 3:
        missing, empty = (int(i) for i in rng.choice(n, size=2, replace=False))
        studies[missing] = replace(studies[missing], report=None)
        studies[empty] = replace(studies[empty], report="")
        donor = studies[int(rng.integers(n))]
        accession = ""
        while not accession or accession in taken:
            accession = f"{SITES[donor.site].accession_prefix}{rng.integers(10**7, 10**8)}"
        taken.add(accession)
        orphans.append(
            (
                part,
                accession,
                donor.patient.patient_id,
                "Exam cancelled: patient unable to tolerate MRI (claustrophobia).",
            )
        )
    return studies, orphans


def plan_corpus(cfg: DemoCorpusConfig) -> CorpusPlan:
    """Plan both parts; patients never cross parts (MRNs are unique over the corpus)."""
    taken: set[str] = set()
    total = cfg.n_train_studies + cfg.n_benchmark_studies
    with ProgressReporter("demo corpus: planning studies", total, unit="studies") as bar:
        train, orphans = _plan_part(cfg, "train", cfg.n_train_studies, taken, bar)
        bench, more = _plan_part(cfg, "benchmark", cfg.n_benchmark_studies, taken, bar)
    return CorpusPlan(cfg, tuple(train + bench), tuple(orphans + more))
