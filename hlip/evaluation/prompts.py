"""Zero-shot prompts as versioned configuration: one YAML file per prompt set in `hlip/evaluation/prompts/`.

A prompt set names its templates and, per class or finding, the phrasings that describe it:

```yaml
name: brain_mri_demo
version: 1
templates: ["{}.", "MRI brain: {}."]          # each phrasing is wrapped by every template, then averaged
patterns: {positive: "{} is present", negative: "{} is not present"}   # optional, expands plain findings
classes:                                      # multiclass: softmax over classes
  normal: ["no acute intracranial abnormality", "normal brain MRI"]
findings:                                     # multilabel: per finding, softmax over (negative, positive)
  stroke: {positive: ["acute infarct"], negative: ["no acute infarct"]}
  glioma: glioma                              # plain phrase: expanded by `patterns`
  microbleeds: {positive: ["microbleeds"]}    # no negative: cosine score of the positive prompt
```

Class names are matched to a benchmark's label names case-insensitively, ignoring spaces, `_` and `-`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

PROMPT_DIR = Path(__file__).parent / "prompts"


class PromptError(ValueError):
    """A prompt set is missing, malformed, or does not cover a benchmark's classes."""


@dataclass(frozen=True)
class FindingPrompts:
    """Phrasings of one finding: present (`positive`) and, optionally, absent (`negative`)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSet:
    """A named, versioned set of zero-shot prompts.

    Attributes:
        name: Set name (file stem).
        version: Integer bumped whenever a phrasing or template changes (recorded in results).
        templates: Sentence templates, each with one `{}` for the phrasing.
        classes: Multiclass phrasings per class.
        findings: Per-finding positive / negative phrasings.
        description: Free text (where the phrasings come from).
        aliases: Other names of a class or finding (alias -> entry name), e.g. `healthy: normal`.
    """

    name: str
    version: int
    templates: tuple[str, ...]
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    findings: dict[str, FindingPrompts] = field(default_factory=dict)
    description: str = ""
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """sha256 of the set's content (templates and phrasings), first 12 hex digits."""
        doc = {
            "templates": list(self.templates),
            "classes": {k: list(v) for k, v in self.classes.items()},
            "findings": {k: [list(v.positive), list(v.negative)] for k, v in self.findings.items()},
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]

    def with_templates(self, templates: Sequence[str] | None) -> PromptSet:
        """The same set with `templates` instead of its own (None: unchanged)."""
        if templates is None:
            return self
        return replace(self, templates=_check_templates(templates, f"prompt set {self.name}"))

    def class_phrasings(self, names: Sequence[str]) -> list[tuple[str, ...]]:
        """Multiclass phrasings for each of `names`, in that order.

        Raises:
            PromptError: A name has no entry under `classes`.
        """
        return [
            self.classes[key] for key in _match(names, self.classes, self.aliases, f"prompt set {self.name} (classes)")
        ]

    def finding_prompts(self, names: Sequence[str]) -> list[FindingPrompts]:
        """Finding prompts for each of `names`, in that order.

        Raises:
            PromptError: A name has no entry under `findings`.
        """
        return [
            self.findings[key]
            for key in _match(names, self.findings, self.aliases, f"prompt set {self.name} (findings)")
        ]

    def to_doc(self) -> dict[str, Any]:
        """The set as its YAML document: `parse_prompt_set(s.to_doc()) == s`."""
        doc: dict[str, Any] = {"name": self.name, "version": self.version, "description": self.description,
                               "templates": list(self.templates)}  # fmt: skip
        if self.classes:
            doc["classes"] = {k: list(v) for k, v in self.classes.items()}
        if self.findings:
            doc["findings"] = {k: {"positive": list(v.positive), "negative": list(v.negative)}
                               for k, v in self.findings.items()}  # fmt: skip
        if self.aliases:
            doc["aliases"] = dict(self.aliases)
        return doc

    def render(self, phrasings: Sequence[str]) -> list[str]:
        """Every template applied to every phrasing: `len(phrasings) * len(templates)` sentences."""
        return [template.replace("{}", phrase) for phrase in phrasings for template in self.templates]


def list_prompt_sets() -> list[str]:
    """Names of the prompt sets shipped with the package."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.yaml"))


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """Load a shipped prompt set by name, or any prompt-set YAML file by path.

    Raises:
        PromptError: Unknown name, unreadable file or a malformed set (the message names the file and key).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPT_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise PromptError(f"unknown prompt set {str(name_or_path)!r}; shipped sets: {list_prompt_sets()}")
    if not path.is_file():
        raise PromptError(f"prompt set file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML: {exc}") from exc
    return parse_prompt_set(doc, where=str(path), default_name=path.stem)


def parse_prompt_set(doc: Any, where: str = "prompt set", default_name: str = "custom") -> PromptSet:
    """Validate a prompt-set mapping (the YAML document) and build the `PromptSet`."""
    if not isinstance(doc, Mapping):
        raise PromptError(f"{where}: expected a mapping at the top level")
    known = {"name", "version", "description", "source", "templates", "patterns", "classes", "findings", "aliases"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PromptError(f"{where}: unknown key(s) {unknown}; accepted: {sorted(known)}")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PromptError(f"{where}: 'version' must be an integer, got {version!r}")
    templates = _check_templates(doc.get("templates") or ["{}"], where)
    patterns = doc.get("patterns") or {}
    if not isinstance(patterns, Mapping) or set(patterns) - {"positive", "negative"}:
        raise PromptError(f"{where}: 'patterns' must be a mapping with 'positive' and/or 'negative'")
    classes = {str(k): _phrases(v, f"{where}: classes.{k}") for k, v in (doc.get("classes") or {}).items()}
    findings = {str(k): _finding(v, patterns, f"{where}: findings.{k}") for k, v in (doc.get("findings") or {}).items()}
    if not classes and not findings:
        raise PromptError(f"{where}: defines neither 'classes' nor 'findings'")
    return PromptSet(
        name=str(doc.get("name") or default_name),
        version=version,
        templates=templates,
        classes=classes,
        findings=findings,
        description=str(doc.get("description") or ""),
        aliases={str(k): str(v) for k, v in (doc.get("aliases") or {}).items()},
    )


def _check_templates(templates: Any, where: str) -> tuple[str, ...]:
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates:
        raise PromptError(f"{where}: 'templates' must be a non-empty list of strings")
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise PromptError(f"{where}: every template needs exactly one '{{}}'; bad: {bad}")
    return tuple(templates)


def _phrases(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise PromptError(f"{where}: expected a phrase or a non-empty list of phrases, got {value!r}")
    return tuple(p.strip() for p in items)


def _finding(value: Any, patterns: Mapping[str, str], where: str) -> FindingPrompts:
    if isinstance(value, str):
        if "positive" not in patterns:
            raise PromptError(f"{where}: a plain phrase needs 'patterns.positive' to expand it")
        positive = (patterns["positive"].replace("{}", value),)
        negative: tuple[str, ...] = (patterns["negative"].replace("{}", value),) if "negative" in patterns else ()
        return FindingPrompts(positive, negative)
    if not isinstance(value, Mapping) or set(value) - {"positive", "negative"} or "positive" not in value:
        raise PromptError(f"{where}: expected a phrase or a mapping with 'positive' (and optionally 'negative')")
    negatives = _phrases(value["negative"], f"{where}.negative") if value.get("negative") else ()
    return FindingPrompts(_phrases(value["positive"], f"{where}.positive"), negatives)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def _match(names: Sequence[str], entries: Mapping[str, Any], aliases: Mapping[str, str], where: str) -> list[str]:
    by_key = {_key(alias): target for alias, target in aliases.items() if target in entries}
    by_key.update({_key(k): k for k in entries})
    missing = [n for n in names if _key(n) not in by_key]
    if missing:
        raise PromptError(f"{where}: no prompts for {missing}; it defines {sorted(entries)}")
    return [by_key[_key(n)] for n in names]
