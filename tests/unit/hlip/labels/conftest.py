"""Shared fixtures of the label tests: the rules labellers (the medspacy pipeline is built once per session)."""

from __future__ import annotations

import pytest

from hlip.labels.finding_list import load_findings
from hlip.labels.rules import RulesLabeler


@pytest.fixture(scope="session")
def brain_rules() -> RulesLabeler:
    return RulesLabeler(load_findings("brain_mri"))


@pytest.fixture(scope="session")
def chest_rules() -> RulesLabeler:
    return RulesLabeler(load_findings("chest_ct"))
