"""Per-item sampling policies: which scans of a study a training item shows, and how its report is read.

Both policies are pure functions of the study's rows and a `numpy.random.Generator`; the dataset derives that
generator from `(seed, epoch, index)` (`item_rng`), so an item is the same whatever worker loads it and a
resumed run sees exactly the items an uninterrupted one would.

Scans (`ScanPolicy.mode`):
- `all`: every scan of the study (deterministic order).
- `max_n`: up to `max_scans` distinct scans, no duplicates; a random subset in random order in training, the
  first `max_scans` in the canonical kind/plane order in evaluation.
- `fixed_n`: upstream HLIP (Zch0414/hlip `data_brain_mri.py`): shuffle in training (canonical order in
  evaluation), repeat the list `ceil(N / n)` times and keep the first `N`, so every study has exactly `N`
  scans (duplicates when it has fewer).

Reports (`TextPolicy`): identifier-only lines left by scrubbing (``Patient: [NAME] MRN: [ID]``,
``Electronically [NAME]``) are dropped, the rest is split into sections (a line ending with ``:`` or starting
with ``LABEL:``) and sentences; in training the sentences are shuffled within each section, and with
`single_sentence_prob` one random content sentence stands for the whole report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

ScanMode = Literal["all", "max_n", "fixed_n"]

# Canonical order of scans in evaluation: structural first, then diffusion, then the rest; axial first.
KIND_ORDER = ("t1", "t1c", "t2", "flair", "dwi", "adc", "swi")
PLANE_ORDER = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class ScanPolicy:
    """Which scans of a study make one item.

    Attributes:
        mode: `all`, `max_n` (up to N distinct scans) or `fixed_n` (upstream tiling to exactly N).
        max_scans: N.
        kinds: Keep only scans of these kinds (empty: all kinds); a study left with none is skipped.
    """

    mode: str = "max_n"
    max_scans: int = 8
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in get_args(ScanMode):
            raise ValueError(f"scan policy mode must be one of {get_args(ScanMode)}, got {self.mode!r}")
        if self.max_scans < 1:
            raise ValueError(f"scan policy max_scans must be >= 1, got {self.max_scans}")


@dataclass(frozen=True)
class TextPolicy:
    """How a scrubbed report becomes the training text.

    Attributes:
        shuffle_sentences: In training, shuffle sentences within each section (upstream shuffles the report's
            sentences every time a study is drawn).
        single_sentence_prob: In training, probability of using one random content sentence instead of the
            whole report (sentence-level sampling against memorising report details).
        lead_sections: Section headers (any case, colon optional: ``impression``, ``findings``) whose sections come
            first, in this order; the other sections follow in the report's order. The text tower reads only its
            first `context_length` tokens, so these are the sections a long report keeps (reports list examination,
            indication and comparison before the findings and the impression, which are then cut first).
    """

    shuffle_sentences: bool = True
    single_sentence_prob: float = 0.0
    lead_sections: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.single_sentence_prob <= 1.0:
            raise ValueError(f"single_sentence_prob must lie in [0, 1], got {self.single_sentence_prob}")
        names = [section_name(h) for h in self.lead_sections]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"lead_sections must name distinct, non-empty section headers, got {self.lead_sections}")

    @property
    def deterministic(self) -> bool:
        """The training text of a report is the same in every epoch (no shuffling, no sentence sampling)."""
        return not self.shuffle_sentences and self.single_sentence_prob == 0.0


def item_rng(seed: int, epoch: int, index: int, stream: int | None = None) -> np.random.Generator:
    """The generator of item `index` in `epoch`: independent of workers, order of loading and resumption.

    `stream` keeps a second use's draws apart from these (image augmentation: `augment.AUGMENT_STREAM`), so
    turning it on changes neither the chosen scans nor the report text.
    """
    return np.random.default_rng([seed, epoch, index] if stream is None else [seed, epoch, index, stream])


def canonical_order(kinds: Sequence[str], planes: Sequence[str], keys: Sequence[str]) -> list[int]:
    """Positions of a study's scans sorted by kind, plane, then scan key (the evaluation order)."""

    def rank(value: str, order: tuple[str, ...]) -> int:
        return order.index(value) if value in order else len(order)

    return sorted(
        range(len(keys)), key=lambda i: (rank(kinds[i], KIND_ORDER), kinds[i], rank(planes[i], PLANE_ORDER), keys[i])
    )


def select_scans(order: Sequence[int], policy: ScanPolicy, rng: np.random.Generator | None) -> list[int]:
    """Pick scan positions from `order` (the canonical order) under `policy`.

    Args:
        order: Positions of the study's scans in canonical order (length n >= 1).
        policy: The scan policy.
        rng: Random generator in training; None for the deterministic evaluation choice.

    Returns:
        Positions to load, in the order they are stacked (length <= N for `max_n`, exactly N for `fixed_n`).
    """
    if not order:
        raise ValueError("a study needs at least one scan to sample from")
    chosen = list(order)
    if rng is not None and policy.mode != "all":
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    if policy.mode == "max_n":
        return chosen[: policy.max_scans]
    if policy.mode == "fixed_n":
        return (chosen * math.ceil(policy.max_scans / len(chosen)))[: policy.max_scans]
    return chosen


def choose_scans(
    kinds: Sequence[str],
    planes: Sequence[str],
    keys: Sequence[str],
    policy: ScanPolicy,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """The one scan-selection rule of training, evaluation and serving: positions (into the given lists) of the
    scans a study contributes, in stacking order.

    Scans of kinds outside `policy.kinds` (when it names any) are dropped, the rest put in canonical order
    (`canonical_order`) and picked with `select_scans` (random with `rng` in training, deterministic without).

    Raises:
        ValueError: The lists differ in length, or no scan is left after the kind filter.
    """
    if not len(kinds) == len(planes) == len(keys):
        raise ValueError(f"kinds, planes and keys differ in length ({len(kinds)}, {len(planes)}, {len(keys)})")
    kept = [i for i, kind in enumerate(kinds) if not policy.kinds or kind in policy.kinds]
    if not kept:
        wanted = f" of kinds {list(policy.kinds)}" if policy.kinds else ""
        raise ValueError(f"no usable scan{wanted} in the study (it has {sorted(set(kinds))})")
    order = canonical_order([kinds[i] for i in kept], [planes[i] for i in kept], [keys[i] for i in kept])
    return [kept[order[j]] for j in select_scans(list(range(len(order))), policy, rng)]


_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")
_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z /&-]{0,40}):\s*(.*)$")
_ENUMERATOR = re.compile(r"^\s*(\d+[.)]|[-*\u2022])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")


def is_identifier_line(line: str) -> bool:
    """True for lines that are only scrubbed identifiers and their labels (headers, signatures)."""
    if not _PLACEHOLDER.search(line):
        return False
    words = [w for w in _PLACEHOLDER.sub(" ", line).split() if not w.endswith(":")]
    return len(words) < 3


def section_name(header: str) -> str:
    """A section header as `lead_sections` matches it: ``"IMPRESSION:"`` -> ``"impression"``."""
    return " ".join(header.strip().rstrip(":").split()).lower()


def lead_first(sections: list[tuple[str, list[str]]], lead: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`sections` with those whose header `lead` names first, in `lead`'s order; the rest keep their order."""
    if not lead:
        return sections
    rank = {section_name(name): i for i, name in enumerate(lead)}
    return sorted(sections, key=lambda section: rank.get(section_name(section[0]), len(rank)))


def split_sections(text: str) -> list[tuple[str, list[str]]]:
    """A report as `(header, sentences)` sections, identifier lines dropped.

    A line ``Findings:`` opens a section whose sentences follow; a line ``EXAM: MRI BRAIN`` is a one-line
    section with header ``EXAM:``; text before any header belongs to a section with an empty header. Numbered
    or bulleted lines are one sentence each.
    """
    sections: list[tuple[str, list[str]]] = [("", [])]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or is_identifier_line(line):
            continue
        label = _LABEL.match(line)
        if label and not _ENUMERATOR.match(line):
            sections.append((f"{label.group(1).strip()}:", []))
            line = label.group(2).strip()
            if not line:
                continue
        if _ENUMERATOR.match(line):
            sections[-1][1].append(_ENUMERATOR.sub("", line))
        else:
            sections[-1][1].extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return [(h, s) for h, s in sections if h or s]


def report_text(text: str, policy: TextPolicy | None, rng: np.random.Generator | None) -> str:
    """The training (rng given) or evaluation (rng None) text of a scrubbed report.

    Sections stay in order, one per line (``Header: sentence sentence``); in training the sentences of each
    section are shuffled, or one content sentence is returned with probability `single_sentence_prob`.
    """
    policy = policy or TextPolicy(shuffle_sentences=False)
    sections = lead_first(split_sections(text), policy.lead_sections)
    if rng is not None and policy.single_sentence_prob > 0 and rng.random() < policy.single_sentence_prob:
        content = [s for _, sentences in sections for s in sentences]
        if content:
            return content[int(rng.integers(len(content)))]
    lines = []
    for header, sentences in sections:
        if rng is not None and policy.shuffle_sentences and len(sentences) > 1:
            sentences = [sentences[i] for i in rng.permutation(len(sentences))]
        lines.append(" ".join([header, *sentences]).strip())
    return "\n".join(lines)
