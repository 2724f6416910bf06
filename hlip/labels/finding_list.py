"""Finding lists: the versioned vocabulary that report labels are given for.

A finding list is a YAML file (``hlip/labels/findings/<name>.yaml`` for the packaged ones): a name, a version and,
per finding, its name, a description and the terms a radiologist writes for it. The rules backend matches the
terms; the LLM backend shows the names and descriptions in its prompt. The version keys the LLM cache and is
recorded with every label table, so changing a list invalidates what was labelled with the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

FINDINGS_DIR = Path(__file__).parent / "findings"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FindingListError(ValueError):
    """A finding list file is missing or malformed."""


@dataclass(frozen=True)
class Finding:
    """One finding of a list.

    Attributes:
        name: Snake-case identifier, the column name of label matrices.
        description: One line a reader (or an LLM) can apply.
        terms: Phrases that name the finding, matched case-insensitively token by token.
        patterns: Regular expressions for spelling variants (optional).
    """

    name: str
    description: str
    terms: tuple[str, ...]
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FindingList:
    """An ordered, versioned list of findings."""

    name: str
    version: str
    findings: tuple[Finding, ...]
    modality: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Finding names in list order (the columns of `to_matrix`)."""
        return tuple(f.name for f in self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, name: str) -> Finding:
        for finding in self.findings:
            if finding.name == name:
                return finding
        raise KeyError(f"finding {name!r} is not in list {self.name!r}; it has {list(self.names)}")

    @property
    def fingerprint(self) -> str:
        """sha256 of the list's content (changes with any term or description)."""
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    def subset(self, names: tuple[str, ...] | list[str]) -> FindingList:
        """The list restricted to `names`, in the given order."""
        return FindingList(self.name, self.version, tuple(self[n] for n in names), self.modality)


def available_finding_lists() -> tuple[str, ...]:
    """Names of the packaged finding lists."""
    return tuple(sorted(p.stem for p in FINDINGS_DIR.glob("*.yaml")))


def load_findings(name_or_path: str | Path) -> FindingList:
    """Load a packaged finding list by name (``brain_mri``, ``chest_ct``) or any list file by path.

    Raises:
        FindingListError: When the list does not exist or is malformed (the message names the file and the field).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = FINDINGS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise FindingListError(
                f"no packaged finding list {str(name_or_path)!r}; available: {list(available_finding_lists())}"
            )
    if not path.is_file():
        raise FindingListError(f"finding list file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    return _parse(data, str(path))


def _parse(data: Any, where: str) -> FindingList:
    if not isinstance(data, dict):
        raise FindingListError(f"{where}: expected a mapping at the top level")
    missing = [k for k in ("name", "version", "findings") if k not in data]
    if missing:
        raise FindingListError(f"{where}: missing key(s) {missing}")
    unknown = sorted(set(data) - {"name", "version", "findings", "modality"})
    if unknown:
        raise FindingListError(f"{where}: unknown key(s) {unknown}")
    items = data["findings"]
    if not isinstance(items, list) or not items:
        raise FindingListError(f"{where}: 'findings' must be a non-empty list")
    findings = tuple(_parse_finding(item, f"{where}: findings[{i}]") for i, item in enumerate(items))
    names = [f.name for f in findings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FindingListError(f"{where}: duplicate finding name(s) {duplicates}")
    return FindingList(str(data["name"]), str(data["version"]), findings, str(data.get("modality", "")))


def _parse_finding(item: Any, where: str) -> Finding:
    if not isinstance(item, dict):
        raise FindingListError(f"{where}: expected a mapping")
    unknown = sorted(set(item) - {"name", "description", "terms", "patterns"})
    if unknown:
        raise FindingListError(f"{where}: unknown key(s) {unknown}")
    name = str(item.get("name", ""))
    if not _NAME.match(name):
        raise FindingListError(f"{where}: name {name!r} must be snake_case (a-z, 0-9, _)")
    terms = tuple(str(t).strip() for t in item.get("terms") or () if str(t).strip())
    patterns = tuple(str(p) for p in item.get("patterns") or ())
    if not terms and not patterns:
        raise FindingListError(f"{where} ({name}): needs at least one term or pattern")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise FindingListError(f"{where} ({name}): bad pattern {pattern!r}: {exc}") from exc
    return Finding(name, str(item.get("description", "")).strip(), terms, patterns)
