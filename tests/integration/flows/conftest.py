"""Flow tests: one Prefect test harness (a real temporary Prefect server) and one tiny demo corpus per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hlip.data.demo import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=11, n_train_studies=8, n_benchmark_studies=4), workers=1)
    return out


@pytest.fixture
def workdir(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory like the repository's: the project's params.yaml pointed at the tiny corpus."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for part, spec in params["ingest"]["parts"].items():
        spec["dicom"] = str(tiny_corpus / part / "dicom")
        spec["reports"] = str(tiny_corpus / part / "reports.csv")
    params["ingest"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HLIP_PARAMS", raising=False)
    return tmp_path
