"""The served model's spec: prompt sets, scan choice, signature, and defaults from the export metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.data.sampling import ScanPolicy
from hlip.evaluation.prompts import FindingPrompts as EvalFindingPrompts
from hlip.evaluation.prompts import PromptError, load_prompt_set, parse_prompt_set
from hlip.tracking.pyfunc import chosen_paths, load_prompts, signature


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


def test_served_scans_are_chosen_by_the_model_contract() -> None:
    from hlip.data.contract import StudyContract

    rows = [{"kind": k, "plane": "axial", "scan_key": f"k{i}", "path": f"s{i}.npy"}
            for i, k in enumerate(["flair", "t2", "t1", "adc", "dwi"])]  # fmt: skip
    # canonical kind order (t1, t2, flair, dwi, adc), truncated to the policy's count
    assert chosen_paths(rows, StudyContract(scans=ScanPolicy("max_n", 3))) == ["s2.npy", "s1.npy", "s0.npy"]
    assert chosen_paths(rows, StudyContract(scans=ScanPolicy("max_n", 8, kinds=("dwi", "adc")))) == ["s4.npy", "s3.npy"]
    tiled = chosen_paths(rows[:2], StudyContract(scans=ScanPolicy("fixed_n", 3)))
    assert tiled == ["s1.npy", "s0.npy", "s1.npy"]
    with pytest.raises(ValueError, match="no usable scan"):
        chosen_paths([], StudyContract())
    with pytest.raises(ValueError, match="no usable scan of kinds"):
        chosen_paths(rows, StudyContract(scans=ScanPolicy(kinds=("swi",))))


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


def test_spec_takes_its_contract_from_the_export(tmp_path: Path) -> None:
    from hlip.data.contract import StudyContract
    from hlip.data.preprocess import PreprocessConfig
    from hlip.tracking.pyfunc import ServingSpec

    contract = StudyContract(
        PreprocessConfig(size=(16, 32, 32), spacing=(8.0, 7.0, 7.0)), ScanPolicy("fixed_n", 3, ("t1",))
    )
    spec = ServingSpec.resolve(_export(tmp_path / "m", {"contract": contract.to_dict()}), PROMPTS)
    assert spec.contract == contract
    assert spec.ingest.preprocess == contract.preprocess  # serving ingests as the training part was ingested


def test_spec_refuses_serving_preprocessing_that_differs_from_training(tmp_path: Path) -> None:
    from hlip.data.config import IngestConfig
    from hlip.data.contract import ContractError, StudyContract
    from hlip.data.preprocess import PreprocessConfig
    from hlip.tracking.pyfunc import ServingSpec

    folder = _export(tmp_path / "m", {"contract": StudyContract(PreprocessConfig(size=(16, 32, 32))).to_dict()})
    same = ServingSpec.resolve(folder, PROMPTS, IngestConfig.from_dict({"preprocess": {"size": [16, 32, 32]}}))
    assert same.ingest.preprocess.size == (16, 32, 32)
    with pytest.raises(
        ContractError, match=r"size: model \[16, 32, 32\] vs params.yaml:ingest.preprocess \[32, 64, 64\]"
    ):
        ServingSpec.resolve(folder, PROMPTS, IngestConfig())
    with pytest.raises(ContractError, match="carries no study contract"):
        ServingSpec.resolve(_export(tmp_path / "legacy", {"preprocess": {"size": [16, 32, 32]}}), PROMPTS)


def test_served_volumes_must_be_uint8() -> None:
    import numpy as np

    from hlip.tracking.pyfunc import HLIPStudyModel

    served = HLIPStudyModel.__new__(HLIPStudyModel)  # the dtype check runs before the model is touched
    with pytest.raises(ValueError, match=r"uint8 volumes .* got \['float32'\]"):
        served.predict_volumes([np.zeros((4, 8, 8), dtype=np.float32)])
