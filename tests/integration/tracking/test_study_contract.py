"""The study contract holds from training to serving: for a study with more scans than the policy keeps, and with
kinds filtered out, the training dataset in evaluation mode, the demo benchmark adapter and the served pyfunc (in a
fresh process that can import only the model's runtime, from the registered model) choose the same scans in the
same order and give bit-identical embeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hlip.data.config import IngestConfig

pytestmark = pytest.mark.integration
NAME = "hlip-contract"
# The fresh process may import only the served model's runtime (its pinned requirements and the `hlip` code it
# ships): the demo generator, the local stack, test fixtures and the orchestration/labelling stack are blocked.
PREDICT = """
import importlib.abc, json, sys
BLOCKED = {{"demo_corpus", "local_stack", "testkit", "flows", "nilearn", "prefect", "dvc", "optuna",
           "great_expectations", "medspacy", "spacy"}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the served model imported {{name}}, which is not part of its runtime")
        return None
sys.meta_path.insert(0, Block())
import mlflow, pandas as pd, torch
torch.set_num_threads({threads})  # the test process's count: float sums group by thread, bit-identity needs one
model = mlflow.pyfunc.load_model("models:/{name}@champion")
out = model.predict(pd.DataFrame({{"study_path": [sys.argv[1]]}}))
out.to_json(sys.argv[2], orient="records", double_precision=15)
"""


def _copy_study(corpus: Path, uid: str, dest: Path) -> Path:
    """Copy the benchmark DICOM files of study `uid` (their relative layout kept) into `dest`, alone."""
    import shutil

    import pydicom

    root = corpus / "benchmark" / "dicom"
    for path in sorted(root.rglob("*")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True) if path.is_file() else None
        except Exception:  # the corpus's deliberately bad files
            continue
        if ds is not None and str(ds.get("StudyInstanceUID", "")) == uid:
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return dest


def test_dataset_benchmark_and_served_model_choose_the_same_scans(
    store: Path, corpus: Path, prompts: dict[str, Any], ingest_config: IngestConfig, tmp_path: Path
) -> None:
    import mlflow
    import pandas as pd
    import torch

    from hlip.data import manifest
    from hlip.data.contract import StudyContract
    from hlip.data.dataset import StudyDataset
    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest
    from hlip.data.sampling import ScanPolicy
    from hlip.evaluation.benchmarks import open_benchmark
    from hlip.evaluation.embeddings import embed_volume_batches
    from hlip.models import create_model
    from hlip.models.export import load_model, save_model
    from hlip.tracking.pyfunc import ServingSpec, log_study_model
    from hlip.tracking.registry import register_study_model
    from hlip.tracking.runs import lineage_tags, stage_run
    from testkit.tiny_bert import write_tiny_bert

    key = HashKey.from_env()
    part = tmp_path / "ingested"
    ingest(corpus / "benchmark" / "dicom", part, reports=corpus / "benchmark" / "reports.csv", config=ingest_config,
           key=key)  # fmt: skip
    scans = pd.DataFrame(manifest.read_table(part, "scans"))
    counts = scans.groupby("study_key")["kind"].agg(list)
    study_key = max(counts.index, key=lambda k: (len(counts[k]), k))
    kinds = counts[study_key]
    dropped = sorted(set(kinds))[0]  # one kind the policy leaves out
    kept = [k for k in kinds if k != dropped]
    assert len(kept) >= 3, f"the tiny corpus's largest study has too few scans for this test: {kinds}"
    policy = ScanPolicy("max_n", max_scans=len(kept) - 1, kinds=tuple(sorted(set(kept))))

    # the model exported as pre-training exports it: with its study contract
    torch.manual_seed(0)
    bert = write_tiny_bert(tmp_path / "bert", words=("no", "acute", "infarct", "restricted", "diffusion", "mass",
                                                     "lesion", "the", "brain", "mri", "shows", "a", "."))  # fmt: skip
    contract = StudyContract(ingest_config.preprocess, policy)
    model_dir = save_model(create_model("hlip-tiny", {"text": {"model_dir": str(bert)}}), tmp_path / "export",
                           {"contract": contract.to_dict(), "findings": list(prompts["findings"])})  # fmt: skip
    model = load_model(model_dir)

    # 1. the training dataset in evaluation mode
    dataset = StudyDataset(part, scans_policy=policy, train=False)
    item = dataset[dataset.study_keys.index(study_key)]
    with torch.no_grad():
        from_dataset = model.encode_image(item["image"][None], normalize=True).numpy()[0]  # [E]

    # 2. the demo benchmark adapter, built for the model (its contract read from the export)
    bench = open_benchmark("demo", model_dir, data_root=part,
                           labels_csv=corpus / "ground_truth" / "benchmark_labels.csv", key=key)  # fmt: skip
    bench_keys = list(bench.scan_table(study_key)["scan_key"])
    from_bench = embed_volume_batches(model, torch.device("cpu"), [[bench.load(study_key)]])[0]

    # 3. the registered pyfunc, loaded in a fresh process, fed the study's DICOM folder
    with stage_run("register", {}, root=Path("mlflow")):
        spec = ServingSpec.resolve(model_dir, prompts, ingest_config)
        info = log_study_model(spec)
        version, _ = register_study_model(info.model_uri, spec, NAME, {"zero_shot.macro_auc": 0.5}, lineage_tags(), {})
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", version.version)
    labels = pd.read_csv(corpus / "ground_truth" / "benchmark_labels.csv", dtype=str)
    uid = next(u for u in labels["study_instance_uid"] if key.hash("study", u, 20) == study_key)
    folder = _copy_study(corpus, uid, tmp_path / "one_study")
    out = tmp_path / "served.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "HLIP_SERVE_ROOTS": str(folder)}
    script = PREDICT.format(name=NAME, threads=torch.get_num_threads())
    proc = subprocess.run([sys.executable, "-c", script, str(folder), str(out)],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(out.read_text())[0]
    assert served["error"] == ""

    expected = [scans.loc[scans["study_key"] == study_key].iloc[i]["scan_key"] for i in contract.select(
        *(list(scans.loc[scans["study_key"] == study_key][c]) for c in ("kind", "plane", "scan_key")))]  # fmt: skip
    assert len(expected) == policy.max_scans < len(kept) < len(kinds)  # truncated and filtered
    assert item["scan_keys"] == bench_keys == expected
    assert served["n_scans"] == len(expected)
    dropped_keys = set(scans.loc[(scans["study_key"] == study_key) & (scans["kind"] == dropped), "scan_key"])
    assert not dropped_keys & set(expected)
    np.testing.assert_array_equal(from_dataset, from_bench)  # bit-identical
    np.testing.assert_array_equal(np.asarray(served["embedding"], dtype=np.float32), from_bench)


def test_serving_refuses_ingest_settings_that_break_the_contract(
    store: Path, prompts: dict[str, Any], ingest_config: IngestConfig, tmp_path: Path
) -> None:
    import dataclasses

    import torch

    from hlip.data.contract import ContractError, StudyContract
    from hlip.models import create_model
    from hlip.models.export import save_model
    from hlip.tracking.pyfunc import ServingSpec

    torch.manual_seed(0)
    contract = StudyContract(ingest_config.preprocess)
    model_dir = save_model(create_model("hlip-tiny"), tmp_path / "export", {"contract": contract.to_dict()})
    other = dataclasses.replace(ingest_config, preprocess=dataclasses.replace(ingest_config.preprocess, mode="nearest"))
    with pytest.raises(ContractError, match=r"mode: model 'bilinear' vs params.yaml:ingest.preprocess 'nearest'"):
        ServingSpec.resolve(model_dir, prompts, other)
    bare = save_model(create_model("hlip-tiny"), tmp_path / "bare", {})
    with pytest.raises(ContractError, match="carries no study contract"):
        ServingSpec.resolve(bare, prompts, ingest_config)
