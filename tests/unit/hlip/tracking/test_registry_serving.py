"""The served model's spec: prompt sets, scan choice, signature, and defaults from the export metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.data.sampling import ScanPolicy
from hlip.evaluation.prompts import FindingPrompts as EvalFindingPrompts
from hlip.evaluation.prompts import PromptError, load_prompt_set, parse_prompt_set
from hlip.tracking.pyfunc import load_prompts, select, signature


def test_served_prompts_are_evaluations_prompt_sets(tmp_path: Path) -> None:
    shipped = load_prompts("brain_mri_demo")
    assert shipped == load_prompt_set("brain_mri_demo")
    assert list(shipped.findings)[:4] == ["stroke", "glioma", "meningioma", "metastasis"]
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "version: 3\ntemplates: ['{}', 'mri: {}.']\npatterns: {positive: '{} is present', negative: 'no {}'}\n"
        "findings:\n  stroke: {positive: [acute infarct, restricted diffusion], negative: no infarct}\n"
        "  glioma: mass\n"
    )
    prompts = load_prompts(path)
    assert list(prompts.findings) == ["stroke", "glioma"]
    assert prompts.findings["glioma"] == EvalFindingPrompts(("mass is present",), ("no mass",))
    assert prompts.render(prompts.findings["stroke"].positive) == [
        "acute infarct", "mri: acute infarct.", "restricted diffusion", "mri: restricted diffusion."]  # fmt: skip


def test_prompt_set_document_round_trips() -> None:
    shipped = load_prompt_set("brain_mri_demo")
    assert parse_prompt_set(shipped.to_doc()) == shipped
    assert load_prompts(shipped.to_doc()) == shipped


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"version": 1}, "neither"),
        ({"findings": {"stroke": {"positive": "x", "negative": "y"}}}, "'version'"),
        ({"version": 1, "classes": {"normal": "normal brain"}}, "serving needs 'findings'"),
        ({"version": 1, "findings": {"stroke": {"positive": "x"}}}, r"\['stroke'\] have no negative"),
        ({"version": 1, "templates": ["no slot"], "findings": {"s": {"positive": "x", "negative": "y"}}}, "'{}'"),
    ],
)
def test_bad_prompt_sets_are_rejected(data: dict[str, object], match: str) -> None:
    with pytest.raises(PromptError, match=match):
        load_prompts(data)


def test_select_uses_the_deterministic_scan_policy() -> None:
    paths = [f"s{i}.npy" for i in range(5)]
    assert select(paths, ScanPolicy("max_n", 3)) == ["s0.npy", "s1.npy", "s2.npy"]
    assert select(paths[:2], ScanPolicy("fixed_n", 3)) == ["s0.npy", "s1.npy", "s0.npy"]
    with pytest.raises(ValueError, match="no usable scan"):
        select([], ScanPolicy())


def test_signature_columns() -> None:
    sig = signature(["stroke", "glioma"])
    assert sig.inputs.input_names() == ["study_archive", "study_path", "scan_paths"]
    assert not any(c.required for c in sig.inputs.inputs)
    assert sig.outputs.input_names() == ["stroke", "glioma", "embedding", "n_scans", "quarantine", "error"]


def _export(folder: Path, metadata: dict[str, object]) -> Path:
    """An export folder's config.json (no weights: resolving a spec does not read them)."""
    import json

    from hlip.models import get_model_config

    folder.mkdir()
    doc = {"format_version": 1, "model": get_model_config("hlip-tiny").to_dict(), "metadata": metadata}
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


PROMPTS = {"version": 1, "findings": {"stroke": {"positive": "infarct", "negative": "normal"}}}


def test_spec_defaults_come_from_the_pretrain_metadata(tmp_path: Path) -> None:
    from hlip.tracking.pyfunc import ServingSpec

    meta = {
        "preprocess": {
            "scaling": "uint8 / 255",
            "scans": {"mode": "fixed_n", "max_scans": 3, "kinds": ["t1"]},
            "size": [16, 32, 32],
            "spacing": [8.0, 7.0, 7.0],
            "ingest_config_fingerprint": "ab",
        }
    }
    spec = ServingSpec.resolve(_export(tmp_path / "m", meta), PROMPTS)
    assert spec.ingest.preprocess.size == (16, 32, 32)
    assert spec.ingest.preprocess.spacing == (8.0, 7.0, 7.0)
    assert spec.scan_policy == ScanPolicy("fixed_n", 3, ("t1",))
    bare = ServingSpec.resolve(_export(tmp_path / "bare", {}), PROMPTS)
    assert bare.scan_policy == ScanPolicy("max_n", 8)  # hlip-tiny's max_scans
    assert bare.ingest.preprocess.size == (32, 64, 64)  # IngestConfig defaults


def test_spec_warns_when_serving_preprocessing_differs_from_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hlip.data.config import IngestConfig
    from hlip.tracking.pyfunc import ServingSpec

    folder = _export(tmp_path / "m", {"preprocess": {"size": [16, 32, 32]}})
    ServingSpec.resolve(folder, PROMPTS, IngestConfig.from_dict({"preprocess": {"size": [16, 32, 32]}}))
    assert "differs" not in caplog.text
    spec = ServingSpec.resolve(folder, PROMPTS, IngestConfig())
    assert "differs from the one the model was trained with" in caplog.text
    assert spec.ingest.preprocess.size == (32, 64, 64)  # used as given


def test_served_volumes_must_be_uint8() -> None:
    import numpy as np

    from hlip.tracking.pyfunc import HLIPStudyModel

    served = HLIPStudyModel.__new__(HLIPStudyModel)  # the dtype check runs before the model is touched
    with pytest.raises(ValueError, match=r"uint8 volumes .* got \['float32'\]"):
        served.predict_volumes([np.zeros((4, 8, 8), dtype=np.float32)])
