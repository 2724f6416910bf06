"""Prompt sets: every shipped set loads; expansion, aliases and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.evaluation.prompts import PromptError, list_prompt_sets, load_prompt_set

SHIPPED = {"brain_mri_demo", "ct_rate", "pub_brain_5", "rsna_ich", "cq500", "rad_chestct"}


def test_every_shipped_set_loads_with_a_version() -> None:
    assert set(list_prompt_sets()) >= SHIPPED
    for name in SHIPPED:
        prompts = load_prompt_set(name)
        assert isinstance(prompts.version, int)
        assert prompts.classes or prompts.findings


def test_ct_rate_pairs_expand_from_patterns() -> None:
    prompts = load_prompt_set("ct_rate")
    assert len(prompts.findings) == 18
    (emphysema,) = prompts.finding_prompts(["emphysema"])  # case-insensitive match
    assert prompts.render(emphysema.positive) == ["Emphysema is present."]
    assert prompts.render(emphysema.negative) == ["Emphysema is not present."]


def test_aliases_templates_and_fingerprint() -> None:
    prompts = load_prompt_set("pub_brain_5")
    assert prompts.class_phrasings(["healthy"]) == prompts.class_phrasings(["normal"])
    other = prompts.with_templates(["A: {}"])
    assert other.render(["x"]) == ["A: x"]
    assert other.fingerprint != prompts.fingerprint


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="unknown prompt set"):
        load_prompt_set("nope")
    with pytest.raises(PromptError, match=r"no prompts for \['tumour'\]"):
        load_prompt_set("brain_mri_demo").class_phrasings(["tumour"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntemplates: ['no placeholder']\nclasses: {a: [x]}\n")
    with pytest.raises(PromptError, match="exactly one"):
        load_prompt_set(bad)
    bad.write_text("version: one\nclasses: {a: [x]}\n")
    with pytest.raises(PromptError, match="version"):
        load_prompt_set(bad)
