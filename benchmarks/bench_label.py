"""Report labelling throughput: the rules backend, the llm backend and a naive keyword baseline, one table.

Usage:
    .venv/bin/python benchmarks/bench_label.py [--reports outputs/ingest/train/reports.parquet]
        [--findings brain_mri] [--latency 0 0.05] [--in-flight 1 8] [--reference data/ground_truth/train_labels.csv]
        [--rules-workers 2 4]

The llm rows run against the keyword chat server of `testkit.chat_server` on 127.0.0.1 (no model behind it), with
an optional per-request latency standing in for generation time, so they measure the client (HTTP, JSON
validation, concurrency), not a model; the cache is off. The keyword baseline marks a finding present when any of
its terms occurs anywhere in the report (no negation, no sections). With a reference CSV (the demo's ground
truth) the table adds macro F1 and exact agreement on the findings the reference has. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from hlip.labels.evaluate import ReferenceConfig, evaluate_labels, load_reference
from hlip.labels.finding_list import FindingList, load_findings
from hlip.labels.labeler import read_reports
from hlip.labels.llm import LLMConfig, LLMLabeler
from hlip.labels.rules import RulesConfig, RulesLabeler
from hlip.labels.table import label_rows, make_label_table
from testkit.chat_server import ServerBehaviour, keyword_chat_server


def keyword_baseline(reports: dict[str, str], findings: FindingList) -> pd.DataFrame:
    """1 when any term of a finding occurs in the lower-cased report, else 0."""
    rows = []
    for key, text in reports.items():
        low = text.lower()
        decided = {f.name: (1, "") for f in findings.findings if any(t.lower() in low for t in f.terms)}
        rows += label_rows(key, decided, findings.names, "keyword")
    return make_label_table(rows)


def _quality(table: pd.DataFrame, reference: pd.DataFrame | None) -> tuple[str, str]:
    if reference is None:
        return "", ""
    report = evaluate_labels(table, reference, list(reference.columns))
    return f"{report.macro['f1']:.3f}", f"{report.macro['agreement']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", default="outputs/ingest/train/reports.parquet")
    parser.add_argument("--findings", default="brain_mri")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reference", default="data/ground_truth/train_labels.csv")
    parser.add_argument("--uncertain-column", default="uncertain")
    parser.add_argument("--rules-workers", type=int, nargs="*", default=[2], help="worker counts for rules rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    findings = load_findings(args.findings)
    reports, _ = read_reports(args.reports)
    reference = None
    if args.reference and Path(args.reference).is_file():
        columns = pd.read_csv(args.reference, nrows=0).columns
        scored = tuple(n for n in findings.names if n in columns)
        uncertain = args.uncertain_column if args.uncertain_column in columns else None
        reference = load_reference(ReferenceConfig(args.reference, findings=scored, uncertain_column=uncertain))

    rows = []

    def record(backend: str, setting: str, seconds: float, table: pd.DataFrame, requests: int | str = "") -> None:
        f1, agreement = _quality(table, reference)
        n = table["study_key"].nunique()
        rows.append((backend, setting, n, f"{seconds:.2f}", f"{n / seconds:.1f}", requests, f1, agreement))

    start = time.perf_counter()
    table = keyword_baseline(reports, findings)
    record("keyword", "substring match", time.perf_counter() - start, table)

    start = time.perf_counter()
    labeler = RulesLabeler(findings)
    build = time.perf_counter() - start
    start = time.perf_counter()
    table = labeler.label(reports)
    record("rules", f"medspacy, 1 process (+{build:.1f} s pipeline build)", time.perf_counter() - start, table)
    for workers in args.rules_workers:
        start = time.perf_counter()  # forked workers inherit the built pipeline: the pool's start is in the time
        pooled = RulesLabeler(findings, RulesConfig(workers=workers)).label(reports)
        if not pooled.equals(table):
            raise SystemExit(f"rules with {workers} workers gave another table than 1 process")
        record("rules", f"medspacy, {workers} worker processes (same table)", time.perf_counter() - start, pooled)

    keywords = {f.name: list(f.terms) for f in findings.findings}
    for latency in args.latency:
        for in_flight in args.in_flight:
            with keyword_chat_server(keywords, ServerBehaviour(delay_s=latency)) as server:
                config = LLMConfig(base_url=server.base_url, model="keyword-server", max_in_flight=in_flight,
                                   cache_dir="")  # fmt: skip
                table, _, stats = LLMLabeler(findings, config).label(reports)
                setting = f"local server, {latency * 1000:.0f} ms/request, {in_flight} in flight"
                record("llm", setting, stats.seconds, table, stats.requests)

    head = ("backend", "setting", "reports", "seconds", "reports/s", "requests", "macro F1", "agreement")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for line in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
