"""Report -> silver finding labels (1 present, 0 absent, -1 uncertain) for a versioned finding list.

Two backends, one output table (`hlip.labels.table`): ``rules`` (medspacy ConText, offline, the embedded
default) and ``llm`` (any OpenAI-compatible chat endpoint). medspacy and sklearn load only when used.
"""

from hlip.labels.config import LabelConfig
from hlip.labels.evaluate import QualityReport, ReferenceConfig, evaluate_labels, load_reference
from hlip.labels.finding_list import Finding, FindingList, available_finding_lists, load_findings
from hlip.labels.labeler import LabelResult, label_part, label_reports, read_reports
from hlip.labels.llm import LLMConfig, LLMLabeler, LLMStats
from hlip.labels.rules import RulesConfig, RulesLabeler
from hlip.labels.table import LABEL_COLUMNS, check_label_table, to_matrix

__all__ = [
    "LABEL_COLUMNS",
    "Finding",
    "FindingList",
    "LLMConfig",
    "LLMLabeler",
    "LLMStats",
    "LabelConfig",
    "LabelResult",
    "QualityReport",
    "ReferenceConfig",
    "RulesConfig",
    "RulesLabeler",
    "available_finding_lists",
    "check_label_table",
    "evaluate_labels",
    "label_part",
    "label_reports",
    "load_findings",
    "load_reference",
    "read_reports",
    "to_matrix",
]
