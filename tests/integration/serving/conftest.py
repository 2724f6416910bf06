"""Fixtures of the serving tests: a tiny demo corpus, a tiny exported model with its study contract, registered as
`hlip-demo@champion` in an MLflow store of the module, and one study copied under an allowed root.

Module-scoped: the real scoring server is started once per module (each start costs seconds).
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NAME = "hlip-demo"
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
WORDS = (
    "no",
    "acute",
    "infarct",
    "restricted",
    "diffusion",
    "mass",
    "lesion",
    "the",
    "brain",
    "mri",
    "shows",
    "a",
    ".",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The module's environment: an embedded MLflow store, the de-identification key, offline hub."""
    store = tmp_path_factory.mktemp("mlflow")
    values = {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "HLIP_DEID_KEY": DEID_KEY,
              "HF_HUB_OFFLINE": "1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo corpus: two training and two benchmark studies."""
    from demo_corpus import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=3, n_train_studies=2, n_benchmark_studies=2), workers=1)
    return out


@pytest.fixture(scope="module")
def ingest_config() -> Any:
    from hlip.data.config import IngestConfig

    return IngestConfig.from_dict(INGEST)


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory: pytest.TempPathFactory, ingest_config: Any) -> Path:
    """`hlip-tiny` with a tiny BERT text tower, exported with a study contract matching `INGEST`."""
    import torch

    from hlip.data.contract import StudyContract
    from hlip.data.sampling import ScanPolicy
    from hlip.models import create_model
    from hlip.models.export import save_model
    from testkit.tiny_bert import write_tiny_bert

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("model")
    bert = write_tiny_bert(root / "bert", words=WORDS)
    model = create_model("hlip-tiny", {"text": {"model_dir": str(bert)}})
    contract = StudyContract(preprocess=ingest_config.preprocess, scans=ScanPolicy(mode="max_n", max_scans=8))
    meta = {"findings": list(PROMPTS["findings"]), "labeller": "rules", "contract": contract.to_dict()}
    return save_model(model, root / "export", meta)


@pytest.fixture(scope="module")
def champion(env: dict[str, str], exported_model: Path, ingest_config: Any) -> str:
    """The exported model logged as the pyfunc, registered, and aliased `champion`; returns its version."""
    import mlflow
    from mlflow import MlflowClient

    from hlip.tracking.pyfunc import ServingSpec, log_study_model

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("register")  # this module's store: an experiment id set by an earlier module is not in it
    spec = ServingSpec.resolve(exported_model, PROMPTS, ingest_config)
    with mlflow.start_run():
        info = log_study_model(spec)
    version = mlflow.register_model(info.model_uri, NAME).version
    MlflowClient().set_registered_model_alias(NAME, "champion", version)
    return str(version)


@pytest.fixture(scope="module")
def allowed_root(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """An allowed root holding one training study (`study/`, the export's folder layout kept)."""
    import pydicom

    by_study: dict[str, list[Path]] = {}
    for path in sorted((corpus / "train" / "dicom").rglob("*")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True) if path.is_file() else None
        except Exception:  # the demo corpus's junk and broken files
            continue
        if ds is not None and "StudyInstanceUID" in ds:
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(path)
    files = sorted(by_study.items())[0][1]
    common = Path(os.path.commonpath([p.parent for p in files]))
    root = tmp_path_factory.mktemp("allowed")
    for path in files:
        dest = root / "study" / path.relative_to(common)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return root


def zip_folder(folder: Path) -> bytes:
    """The files under `folder` as a zip (relative names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every entry under `root` (for 'nothing written here' checks)."""
    return {p.relative_to(root).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def evaluate_studies(dicom: Path, model_dir: Path, ingest_config: Any, work: Path) -> dict[str, tuple[Any, Any]]:
    """Evaluation's embedding and zero-shot scores of every study under `dicom`, by study key: the training ingest,
    the model's study contract choosing the scans, evaluation's study embedding and scoring code."""
    import numpy as np
    import torch

    from hlip.data import manifest
    from hlip.data.contract import StudyContract
    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest
    from hlip.evaluation.benchmarks.common import stack_scans
    from hlip.evaluation.embeddings import embed_texts, embed_volume_batches
    from hlip.evaluation.prompts import parse_prompt_set
    from hlip.evaluation.zero_shot import zero_shot_scores
    from hlip.models.export import load_model
    from hlip.models.factory import create_tokenizer

    part = work / "evaluated"
    ingest(dicom, part, config=ingest_config, key=HashKey.from_env())
    contract = StudyContract.of_model(model_dir)
    model = load_model(model_dir).eval()
    tokenizer = create_tokenizer(model.cfg)
    scans = manifest.read_table(part, "scans")
    out = {}
    for key in sorted({str(s["study_key"]) for s in scans}):
        rows = [s for s in scans if s["study_key"] == key]
        order = contract.select([s["kind"] for s in rows], [s["plane"] for s in rows], [s["scan_key"] for s in rows])
        study = stack_scans([np.load(part / rows[i]["path"]) for i in order])  # [N, D, H, W] float in [0, 1]
        z = embed_volume_batches(model, torch.device("cpu"), [[study]])  # one batch of one study -> [1, E]
        scores = zero_shot_scores(
            z, parse_prompt_set(PROMPTS), list(PROMPTS["findings"]), "multilabel",
            lambda texts: embed_texts(model, tokenizer, torch.device("cpu"), texts),
            float(model.logit_scale.detach().exp().clamp(max=100.0)),
        )  # fmt: skip
        out[key] = (z[0], scores.scores[0])
    return out
