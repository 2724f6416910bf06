"""The versioned prompt of the `llm` backend and the strict parser of its answers.

The report is data: it travels alone, inside ``<report>`` tags of its own user message (tags inside the report are
neutralised first), and the answer must be one JSON object with exactly the list's finding names as keys, each
``{"value": 1 | 0 | -1, "evidence": str}``. Anything else is an `InvalidOutputError`: the answer is retried and,
if it never comes right, the report goes to the failures table instead of being labelled.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hlip.labels.finding_list import FindingList
from hlip.labels.table import VALUES

PROMPTS_DIR = Path(__file__).parent / "prompts"
_TAG = re.compile(r"<\s*/?\s*report\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


class InvalidOutputError(ValueError):
    """The model's answer is not the JSON object the prompt asks for (the message says what is wrong)."""


@dataclass(frozen=True)
class Prompt:
    """A prompt version: system and user templates (placeholders {findings}, {keys}, {report})."""

    version: str
    system: str
    user: str

    def findings_block(self, findings: FindingList) -> str:
        """The finding lines shown to the model (what the answer depends on, besides the report)."""
        return "\n".join(f"- {f.name}: {f.description}" for f in findings.findings)

    def messages(self, findings: FindingList, report: str) -> list[dict[str, str]]:
        """Chat messages for one report: the system prompt, then the report in its own delimited user message."""
        keys = ", ".join(findings.names)
        system = self.system.format(findings=self.findings_block(findings), keys=keys)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": self.user.format(report=neutralise_tags(report))},
        ]

    def fingerprint(self, findings: FindingList) -> str:
        """sha256 of the prompt version and the finding lines it shows (part of the cache key)."""
        return hashlib.sha256(f"{self.version}\x00{self.findings_block(findings)}".encode()).hexdigest()


def neutralise_tags(report: str) -> str:
    """Report text with any ``<report>``/``</report>`` tag replaced, so it cannot close its own block."""
    return _TAG.sub("[report-tag]", report)


def load_prompt(version_or_path: str | Path) -> Prompt:
    """A packaged prompt by version (``v1``) or a prompt file by path.

    Raises:
        FileNotFoundError: When no such prompt exists.
        ValueError: When the file lacks a key or a template placeholder.
    """
    path = Path(version_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{version_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"prompt {str(version_or_path)!r} not found ({path}); packaged versions: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("version", "system", "user") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    prompt = Prompt(str(data["version"]), str(data["system"]), str(data["user"]))
    if "{report}" not in prompt.user or "{findings}" not in prompt.system:
        raise ValueError(f"{path}: the user template needs {{report}} and the system template {{findings}}")
    return prompt


def parse_labels(content: str, findings: FindingList) -> dict[str, tuple[int, str]]:
    """Parse and validate one answer: ``{finding: (value, evidence)}`` for exactly the list's findings.

    A single surrounding Markdown code fence is tolerated; nothing else is.

    Raises:
        InvalidOutputError: Not JSON, not an object, wrong keys, a value outside {1, 0, -1}, a non-string evidence.
    """
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidOutputError(f"not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidOutputError(f"expected a JSON object, got {type(data).__name__}")
    expected = set(findings.names)
    missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing or extra:
        raise InvalidOutputError(f"wrong keys: missing {missing[:5]}, unexpected {[str(k)[:40] for k in extra[:5]]}")
    return {name: _parse_entry(name, data[name]) for name in findings.names}


def _parse_entry(name: str, entry: Any) -> tuple[int, str]:
    if not isinstance(entry, dict) or set(entry) != {"value", "evidence"}:
        raise InvalidOutputError(f"{name}: expected an object with exactly 'value' and 'evidence'")
    value, evidence = entry["value"], entry["evidence"]
    if isinstance(value, bool) or not isinstance(value, int) or value not in VALUES:
        raise InvalidOutputError(f"{name}: value {value!r} is not one of 1, 0, -1")
    if not isinstance(evidence, str):
        raise InvalidOutputError(f"{name}: evidence must be a string")
    return int(value), evidence.strip()
