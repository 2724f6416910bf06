"""Flow tests: one Prefect test harness (a real temporary Prefect server) and one tiny demo corpus per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    from demo_corpus import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=11, n_train_studies=8, n_benchmark_studies=4), workers=1)
    return out


ParamsEdit = Callable[[dict[str, Any]], None]


@pytest.fixture
def project_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, ParamsEdit | None], Path]:
    """Make `tmp_path` a working directory like the repository's: the project's params.yaml pointed at `corpus`
    (then changed by `edit`), no tracking server or params file inherited from the environment."""

    def make(corpus: Path, edit: ParamsEdit | None = None) -> Path:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        for part, spec in params["ingest"]["parts"].items():
            spec["dicom"] = str(corpus / part / "dicom")
            spec["reports"] = str(corpus / part / "reports.csv")
        params["ingest"]["workers"] = 1
        if edit is not None:
            edit(params)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("HLIP_PARAMS", raising=False)
        return tmp_path

    return make


@pytest.fixture
def workdir(tiny_corpus: Path, project_workdir: Callable[[Path, ParamsEdit | None], Path]) -> Path:
    """A working directory like the repository's: the project's params.yaml pointed at the tiny corpus."""
    return project_workdir(tiny_corpus, None)
