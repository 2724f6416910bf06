"""CSV tables of the corpus: the RIS report exports and the ground truth kept apart from them.

Rows are sorted so that the files are byte-identical whatever order studies were written in; the CSV dialect is
RFC 4180 (CRLF record ends, quoted fields where needed, multi-line report text inside quotes).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from demo_corpus.plan import CorpusPlan, StudyPlan
from demo_corpus.vocabulary import FINDINGS, PARTS

REPORT_COLUMNS = ("accession_number", "patient_id", "report_date", "report_text")
TRAIN_LABEL_COLUMNS = (
    "study_instance_uid",
    "accession_number",
    "patient_id",
    "label",
    *FINDINGS,
    "uncertain",
    "report_status",
)
BENCHMARK_LABEL_COLUMNS = ("study_instance_uid", "accession_number", "label")
SERIES_COLUMNS = (
    "part",
    "study_instance_uid",
    "series_instance_uid",
    "series_number",
    "kind",
    "plane",
    "n_files",
    "multiframe",
    "n_frames",
    "series_description",
    "transfer_syntax",
    "rows",
    "columns",
    "slice_thickness",
    "pixel_spacing",
    "b_values",
    "contrast_agent",
    "derived",
    "defect",
    "folder",
)
BAD_FILE_COLUMNS = ("path", "part", "defect", "study_instance_uid", "series_instance_uid", "source_path")


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a header and rows; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def report_rows(plan: CorpusPlan, part: str) -> list[tuple[str, str, str, str]]:
    """The RIS export of a part: one row per reported study, plus orphan reports, sorted by accession."""
    rows = [
        (s.accession, s.patient.patient_id, s.report_date, s.report) for s in plan.part(part) if s.report is not None
    ]
    rows += [(acc, pid, "", text) for p, acc, pid, text in plan.orphan_reports if p == part]
    return sorted((a, b, c, d or "") for a, b, c, d in rows)


def _status(study: StudyPlan) -> str:
    return "missing" if study.report is None else "empty" if not study.report.strip() else "ok"


def train_label_rows(plan: CorpusPlan) -> list[list[object]]:
    """Ground truth of the training part: the primary class and a 0/1 column per rendered finding."""
    rows: list[list[object]] = []
    for s in plan.part("train"):
        names = {f.name for f in s.findings}
        rows.append(
            [
                s.uid,
                s.accession,
                s.patient.patient_id,
                s.label,
                *(int(f in names) for f in FINDINGS),
                ";".join(sorted(s.uncertain)),
                _status(s),
            ]
        )
    return sorted(rows, key=lambda r: str(r[0]))


def benchmark_label_rows(plan: CorpusPlan) -> list[list[object]]:
    """Ground truth of the benchmark: one of the five classes per study."""
    return sorted(([s.uid, s.accession, s.label] for s in plan.part("benchmark")), key=lambda r: str(r[0]))


def series_rows(plan: CorpusPlan) -> list[list[object]]:
    """Every generated series with its true kind: the reference for ingestion's series classifier."""
    rows: list[list[object]] = []
    for s in plan.studies:
        for se in s.series:
            g = se.grids[0] if se.grids else None
            frames = sum(x.n_slices for x in se.grids) * max(1, len(se.b_values))
            rows.append(
                [
                    s.part,
                    s.uid,
                    se.uid,
                    se.number,
                    se.kind,
                    se.plane,
                    len(se.paths),
                    int(se.multiframe),
                    frames,
                    se.description,
                    se.transfer_syntax,
                    g.rows if g else "",
                    g.cols if g else "",
                    g.thickness if g else "",
                    f"{g.pixel_spacing[0]}\\{g.pixel_spacing[1]}" if g else "",
                    "|".join(str(b) for b in se.b_values),
                    int(se.contrast_agent),
                    int(se.derived),
                    se.defect,
                    se.paths[0].rsplit("/", 1)[0] if se.paths else "",
                ]
            )
    return sorted(rows, key=lambda r: (PARTS.index(str(r[0])), str(r[1]), int(str(r[3]))))


def bad_file_rows(plan: CorpusPlan) -> list[list[object]]:
    """Every deliberately bad file with its defect kind."""
    rows: list[list[object]] = []
    for s in plan.studies:
        series = {se.number: se for se in s.series}
        for d in s.defects:
            se_uid = series[d.series_number].uid if d.kind in ("no_pixel_data", "inconsistent_series") else ""
            rows.append(
                [d.path, s.part, d.kind, s.uid, se_uid, d.source if d.kind in ("truncated", "duplicate") else ""]
            )
        for se in s.series:
            if se.defect:
                rows.extend([p, s.part, se.defect, s.uid, se.uid, ""] for p in se.paths)
    return sorted(rows, key=lambda r: str(r[0]))


def write_tables(out_dir: Path, plan: CorpusPlan) -> dict[str, int]:
    """Write the report exports and the ground truth; returns rows per table."""
    gt = out_dir / "ground_truth"
    counts = {
        f"{part}/reports.csv": write_csv(out_dir / part / "reports.csv", REPORT_COLUMNS, report_rows(plan, part))
        for part in PARTS
    }
    counts["ground_truth/train_labels.csv"] = write_csv(
        gt / "train_labels.csv", TRAIN_LABEL_COLUMNS, train_label_rows(plan)
    )
    counts["ground_truth/benchmark_labels.csv"] = write_csv(
        gt / "benchmark_labels.csv", BENCHMARK_LABEL_COLUMNS, benchmark_label_rows(plan)
    )
    counts["ground_truth/series.csv"] = write_csv(gt / "series.csv", SERIES_COLUMNS, series_rows(plan))
    counts["ground_truth/bad_files.csv"] = write_csv(gt / "bad_files.csv", BAD_FILE_COLUMNS, bad_file_rows(plan))
    return counts
