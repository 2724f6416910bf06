"""The `rules` backend: medspacy (PyRuSH sentences, target matcher, ConText, sectionizer), offline.

Each finding's terms become target rules; ConText decides whether a mention is negated, uncertain, historical,
hypothetical or about family; the sectionizer drops mentions in sections that ask rather than answer
(indication, clinical history, comparison ...). Per report and finding: any affirmed current mention -> 1,
else any uncertain mention -> -1, else 0 (`table.decide`).

The spaCy pipeline is built once per process and finding list (`pipeline`) and reports are labelled in batches
through `nlp.pipe`. With `workers` > 1 the reports are cut into chunks of `CHUNK` (in order) and labelled by a
process pool; forked workers inherit the pipeline the parent built (about 5 s each to build it again where the
start method is spawn). The table is the same for any number of workers: the rules see one report at a time.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from hlip.labels.finding_list import FindingList
from hlip.labels.table import ABSENT, PRESENT, UNCERTAIN, Mention, decide, label_rows, make_label_table
from hlip.progress import ProgressReporter

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span

RESOURCES = Path(__file__).parent / "resources"
BACKEND = "rules"
CHUNK = 128  # reports per unit of work for a worker process (order kept: chunks are joined in input order)

log = logging.getLogger(__name__)
LabelRow = tuple[str, str, int, str, str]  # `table.label_rows`' rows


@dataclass(frozen=True)
class RulesConfig:
    """Options of the rules backend.

    Attributes:
        excluded_sections: Section categories (``resources/sections.yaml``) whose mentions are ignored.
        batch_size: Reports per `nlp.pipe` batch.
        workers: Processes that label (1: this process only). Rules labelling is CPU-bound, about 20 ms a report
            on one core (80 % of it PyRuSH's sentence splitter): 220K reports take over an hour on one.
    """

    excluded_sections: tuple[str, ...] = ("exam", "indication", "history", "comparison", "technique", "signature")
    batch_size: int = 64
    workers: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 1:
            raise ValueError(
                f"label.rules.batch_size and label.rules.workers must be >= 1, got {self.batch_size} and {self.workers}"
            )


def silence_pyrush() -> None:
    """PyRuSH logs a DEBUG line through loguru for every document; keep the stage output readable."""
    from loguru import logger

    logger.disable("PyRuSH")


@cache
def pipeline(findings: FindingList) -> Language:
    """The medspacy pipeline for `findings` (built once per process and list; `FindingList` is hashable)."""
    import medspacy
    from medspacy.context import ConTextRule
    from medspacy.section_detection import SectionRule
    from medspacy.target_matcher import TargetRule

    silence_pyrush()
    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_target_matcher", "medspacy_context"])
    nlp.get_pipe("medspacy_target_matcher").add(
        [TargetRule(term, finding.name) for finding in findings.findings for term in finding.terms]
        + [TargetRule(p, finding.name, pattern=p) for finding in findings.findings for p in finding.patterns]
    )
    context = nlp.get_pipe("medspacy_context")
    context.add([ConTextRule(**rule) for rule in _resource("context.yaml")["rules"]])
    sectionizer = nlp.add_pipe("medspacy_sectionizer", config={"rules": None})
    sections = _resource("sections.yaml")["sections"]
    sectionizer.add([SectionRule(header, category) for category, headers in sections.items() for header in headers])
    return nlp


def _resource(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((RESOURCES / name).read_text()))


def mention_value(ent: Span) -> int:
    """The value one mention votes for: negated/historical/hypothetical/family -> 0, uncertain -> -1, else 1."""
    if ent._.is_negated or ent._.is_historical or ent._.is_hypothetical or ent._.is_family:
        return ABSENT
    return UNCERTAIN if ent._.is_uncertain else PRESENT


def doc_mentions(doc: Doc, excluded_sections: tuple[str, ...]) -> list[Mention]:
    """The finding mentions of one processed report, outside the excluded sections."""
    mentions = []
    for ent in doc.ents:
        if ent._.section_category in excluded_sections:
            continue
        mentions.append(Mention(ent.label_, mention_value(ent), _clean(ent.sent.text)))
    return mentions


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide spaCy's W036 (the sectionizer's token matcher is empty: every section rule is a phrase)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        yield


def _clean(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence).strip()


class RulesLabeler:
    """Label reports with medspacy rules.

    Args:
        findings: The finding list.
        config: Backend options.
    """

    backend = BACKEND

    def __init__(self, findings: FindingList, config: RulesConfig | None = None) -> None:
        self.findings = findings
        self.config = config or RulesConfig()
        self.nlp = pipeline(findings)

    def mentions(self, text: str) -> list[Mention]:
        """Every mention the rules find in one report (for inspection and tests)."""
        with _quiet():
            return doc_mentions(self.nlp(text), self.config.excluded_sections)

    def label(self, reports: Mapping[str, str]) -> pd.DataFrame:
        """Label reports ``{study_key: text}``; returns the label table (one row per study and finding)."""
        items = list(reports.items())
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        workers = min(self.config.workers, len(chunks))
        rows: list[LabelRow] = []
        with ProgressReporter("label: reports (rules)", len(items), unit="reports") as bar:
            if workers <= 1:
                for chunk in chunks:
                    rows += self.rows(chunk)
                    bar.advance(len(chunk))
            else:
                log.info("labelling %d reports in %d chunks with %d worker processes", len(items), len(chunks), workers)
                with ProcessPoolExecutor(
                    workers, initializer=_init_worker, initargs=(self.findings, self.config)
                ) as pool:
                    for chunk, chunk_rows in zip(chunks, pool.map(_label_chunk, chunks), strict=True):
                        rows += chunk_rows
                        bar.advance(len(chunk))
        return make_label_table(rows)

    def rows(self, items: Iterable[tuple[str, str]]) -> list[LabelRow]:
        """The label rows of ``(study_key, text)`` pairs, in their order."""
        items = list(items)
        rows: list[LabelRow] = []
        with _quiet():
            docs = self.nlp.pipe((text for _, text in items), batch_size=self.config.batch_size)
            for (key, _), doc in zip(items, docs, strict=True):
                by_finding: dict[str, list[Mention]] = {}
                for mention in doc_mentions(doc, self.config.excluded_sections):
                    by_finding.setdefault(mention.finding, []).append(mention)
                decided = {name: decide(ms) for name, ms in by_finding.items()}
                rows += label_rows(key, decided, self.findings.names, BACKEND)
        return rows


_WORKER: RulesLabeler | None = None


def _init_worker(findings: FindingList, config: RulesConfig) -> None:
    global _WORKER
    _WORKER = RulesLabeler(findings, config)  # `pipeline` is cached: a forked worker reuses the parent's


def _label_chunk(items: list[tuple[str, str]]) -> list[LabelRow]:
    if _WORKER is None:
        raise RuntimeError("rules worker used before its initializer ran")
    return _WORKER.rows(items)
