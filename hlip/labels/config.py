"""Configuration of the `label` stage (``params.yaml:label``), built with `hlip.config.from_dict`."""

from __future__ import annotations

from dataclasses import dataclass, field

from hlip.labels.evaluate import ReferenceConfig
from hlip.labels.llm import LLMConfig
from hlip.labels.rules import RulesConfig

BACKENDS = ("rules", "llm")


@dataclass(frozen=True)
class LabelConfig:
    """The `label` stage.

    Attributes:
        backend: ``rules`` (medspacy, offline, the embedded default) or ``llm`` (an OpenAI-compatible endpoint).
        findings: Packaged finding list name (``brain_mri``, ``chest_ct``) or a list file path.
        parts: Ingest parts to label.
        ingest_dir: Folder of the ingest outputs (``<part>/reports.parquet``).
        out: Output folder (``<part>/labels.parquet``, ``<part>/failures.parquet``, ``quality.{json,md}``).
        rules: Options of the rules backend.
        llm: Options of the llm backend.
        reference: Reference labels to measure quality against (optional).
    """

    backend: str = "rules"
    findings: str = "brain_mri"
    parts: tuple[str, ...] = ("train", "benchmark")
    ingest_dir: str = "outputs/ingest"
    out: str = "outputs/labels"
    rules: RulesConfig = field(default_factory=RulesConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    reference: ReferenceConfig | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"label.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if not self.parts:
            raise ValueError("label.parts names no part to label")
