"""Sources: local listing and reading; the S3 source's picklability and URI parsing (server tests: the lead's)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from hlip.data.source import LocalSource, S3Source, open_source, parse_s3_uri


def test_local_source_lists_nested_files_sorted_with_versions(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "x").write_bytes(b"12345")
    (tmp_path / "a.dcm").write_bytes(b"")
    src = open_source(tmp_path)
    files = list(src.list_files())
    assert [f.path for f in files] == ["a.dcm", "b/c/x"]
    assert [f.size for f in files] == [0, 5]
    assert src.read_bytes("b/c/x", 2) == b"12"
    (tmp_path / "b" / "c" / "x").write_bytes(b"changed!")
    assert next(f for f in src.list_files() if f.path == "b/c/x").size == 8


def test_missing_local_folder_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalSource(tmp_path / "nope")


def test_s3_uri_parsing_and_pickling_without_client() -> None:
    assert parse_s3_uri("s3://bucket/some/prefix") == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="bucket"):
        parse_s3_uri("s3:///x")
    src = open_source("s3://bucket/raw")
    assert isinstance(src, S3Source)
    assert src.prefix == "raw/"
    src._client = object()  # a live client must not travel to workers
    clone = pickle.loads(pickle.dumps(src))
    assert clone._client is None
    assert clone.uri == "s3://bucket/raw/"
