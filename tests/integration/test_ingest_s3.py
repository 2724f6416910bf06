"""Ingestion straight from `s3://`, against a real SeaweedFS S3 server on 127.0.0.1 started by the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hlip.data.source import SourceError
from local_stack import SeaweedFS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("s3"), buckets=("raw",)) as server:
        yield server


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo_corpus import DemoCorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "data"
    generate_corpus(out, DemoCorpusConfig.tiny(seed=5, n_train_studies=4, n_benchmark_studies=0), workers=1)
    return out


def _upload(server: SeaweedFS, root: Path, prefix: str) -> int:
    client = server.client()
    n = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), "raw", f"{prefix}/{path.relative_to(root).as_posix()}")
        n += 1
    return n


def test_s3_source_gives_the_same_manifests_as_the_local_folder(
    s3: SeaweedFS, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hlip.data.config import IngestConfig
    from hlip.data.ingest import ingest

    uploaded = _upload(s3, corpus / "train", "export/train")
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    config = IngestConfig(workers=1)
    remote = ingest("s3://raw/export/train/dicom", tmp_path / "s3", reports="s3://raw/export/train/reports.csv",
                    config=config)  # fmt: skip
    local = ingest(corpus / "train" / "dicom", tmp_path / "local", reports=corpus / "train" / "reports.csv",
                   config=config)  # fmt: skip

    assert remote["files"] == local["files"] == uploaded - 1  # everything but reports.csv is under dicom/
    assert remote["studies_with_scans"] == local["studies_with_scans"] > 0
    for table, key in (("scans", "scan_key"), ("studies", "study_key"), ("reports", "study_key")):
        a = pd.read_parquet(tmp_path / "s3" / f"{table}.parquet").sort_values(key).reset_index(drop=True)
        b = pd.read_parquet(tmp_path / "local" / f"{table}.parquet").sort_values(key).reset_index(drop=True)
        cols = [c for c in a.columns if c not in ("path", "fingerprint")]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_like=True)
    for scan in pd.read_parquet(tmp_path / "s3" / "scans.parquet").itertuples():
        assert (tmp_path / "s3" / scan.path).read_bytes() == (tmp_path / "local" / scan.path).read_bytes()


def test_wrong_credentials_fail_fast_with_a_clear_error_and_no_secret(
    s3: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hlip.data.ingest import ingest

    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "definitely-wrong-secret")
    with pytest.raises(SourceError, match=r"refused access key HLIP\w+ for s3://raw/export/train/dicom/") as info:
        ingest("s3://raw/export/train/dicom", tmp_path / "out")
    assert "definitely-wrong-secret" not in str(info.value)
    assert s3.credentials.secret_key not in str(info.value)


def test_missing_bucket_and_unreachable_endpoint_are_named(
    s3: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One error naming the bucket or the endpoint, without retrying for long (a generous bound: the client's
    retries on a refused connection take about a second), and without the secret key."""
    from hlip.data.ingest import ingest
    from local_stack import free_port

    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"s3://no-such-bucket/x/ does not exist at http://127\.0\.0\.1:\d+") as info:
        ingest("s3://no-such-bucket/x", tmp_path / "a")
    assert time.monotonic() - t0 < 20
    assert s3.credentials.secret_key not in str(info.value)
    assert not (tmp_path / "a" / "studies.parquet").exists()

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=f"cannot reach the S3 endpoint {dead}") as info:
        ingest("s3://raw/x", tmp_path / "b")
    assert time.monotonic() - t0 < 20
    assert s3.credentials.secret_key not in str(info.value)
