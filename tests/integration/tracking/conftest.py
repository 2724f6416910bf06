"""Fixtures of the register/serve tests: a tiny demo corpus, a tiny exported model, an MLflow store in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DEID_KEY = "test-serving-key-0123456789"
PROMPTS: dict[str, Any] = {
    "version": 1,
    "templates": ["{}", "the brain mri shows {}."],
    "findings": {
        "stroke": {"positive": ["acute infarct", "restricted diffusion"], "negative": "no acute infarct"},
        "glioma": {"positive": "a mass lesion", "negative": "no mass"},
    },
}
INGEST = {"workers": 1, "preprocess": {"size": [16, 32, 32], "spacing": [8.0, 7.0, 7.0]}}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo corpus of two training studies (fake identifiers in headers and folders, a localizer each)."""
    from demo_corpus import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=3, n_train_studies=2, n_benchmark_studies=2), workers=1)
    return out


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hlip-tiny` with a tiny BERT text tower (in the sibling folder `bert`), exported."""
    import torch

    from hlip.data.config import IngestConfig
    from hlip.data.contract import StudyContract
    from hlip.models import create_model
    from hlip.models.export import save_model
    from testkit.tiny_bert import write_tiny_bert

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("model")
    bert = write_tiny_bert(root / "bert", words=("no", "acute", "infarct", "restricted", "diffusion", "mass",
                                                 "lesion", "the", "brain", "mri", "shows", "a", "."))  # fmt: skip
    model = create_model("hlip-tiny", {"text": {"model_dir": str(bert)}})
    contract = StudyContract(IngestConfig.from_dict(INGEST).preprocess)  # what pre-training writes
    meta = {"findings": list(PROMPTS["findings"]), "labeller": "rules", "contract": contract.to_dict()}
    return save_model(model, root / "export", meta)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded MLflow store (SQLite + artifacts) under tmp_path, the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HLIP_DEID_KEY", DEID_KEY)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "mlflow"


@pytest.fixture
def write_metrics(tmp_path: Path) -> Callable[..., Path]:
    """`write_metrics(auc, name=...)`: an evaluate-style flat metrics.json with CIs."""

    def write(auc: float, name: str = "metrics.json") -> Path:
        path = tmp_path / "evaluate" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        metrics = {"zero_shot.macro_auc": auc, "zero_shot.macro_auc_ci_low": auc - 0.05,
                   "zero_shot.macro_auc_ci_high": min(auc + 0.05, 1.0), "zero_shot.balanced_accuracy": auc - 0.1,
                   "n_studies": 40, "benchmark_fingerprint": "demo-0123abcd"}  # fmt: skip
        path.write_text(json.dumps(metrics))
        return path

    return write


@pytest.fixture
def prompts() -> dict[str, Any]:
    """The prompt set of the served findings."""
    return PROMPTS


@pytest.fixture
def ingest_config() -> Any:
    """Ingest settings of the tiny model's grid (16 x 32 x 32 voxels of 8 x 7 x 7 mm)."""
    from hlip.data.config import IngestConfig

    return IngestConfig.from_dict(INGEST)


@pytest.fixture(scope="session")
def phi_study(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """One training study copied under folders named after its patient, and a folder of its localizer only.

    Returns:
        The study folder, the localizer-only folder, and the study's identifiers (names, IDs, UID, folder name).
    """
    import csv

    import pydicom

    by_study: dict[str, list[tuple[Path, Any]]] = {}
    for path in sorted((corpus / "train" / "dicom").rglob("*")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True) if path.is_file() else None
        except Exception:  # junk and broken files of the demo corpus
            continue
        if ds is not None and "StudyInstanceUID" in ds:
            by_study.setdefault(str(ds.StudyInstanceUID), []).append((path, ds))
    uid, files = sorted(by_study.items())[0]
    header = files[0][1]
    name, patient_id = str(header.PatientName), str(header.PatientID)
    folder = (
        tmp_path_factory.mktemp("export") / f"{name.replace('^', '_')}_{patient_id}" / f"ACC_{header.AccessionNumber}"
    )
    common = Path(os.path.commonpath([p.parent for p, _ in files]))
    with (corpus / "ground_truth" / "series.csv").open() as f:
        localizers = {r["series_instance_uid"] for r in csv.DictReader(f) if r["kind"] == "localizer"}
    localizer_only = folder.parent.parent / "localizer_only"
    for path, ds in files:
        for root in (folder, *([localizer_only] if str(ds.SeriesInstanceUID) in localizers else [])):
            dest = root / path.relative_to(common)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    identifiers = [part for part in name.split("^") if len(part) >= 3]
    identifiers += [patient_id, str(header.AccessionNumber), uid, folder.parent.name]
    return folder, localizer_only, identifiers
