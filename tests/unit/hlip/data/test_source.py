"""Sources: local listing and reading; the S3 source's picklability and URI parsing (server tests: the lead's)."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest

from hlip.data.source import (
    BROKEN_LINK,
    INVALID_NAME,
    LINK_LOOP,
    NOT_REGULAR_FILE,
    UNREADABLE,
    LocalSource,
    S3Source,
    open_source,
    parse_s3_uri,
    safe_name,
)


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


def test_listing_order_is_os_walks_top_down_sorted_order(tmp_path: Path) -> None:
    """Each folder's files before its sub-folders, names sorted: the order ingest has always seen (a plain sort of
    full paths would put `b/a/x` before `b/file` and `a.b` before `a/z`)."""
    for rel in ("b/file", "b/a/x", "b/a/c/deep", "a/z", "a.b", "top", "c/d/e/f/g"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    expected = []
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        dirnames.sort()
        expected += [Path(dirpath, n).relative_to(tmp_path).as_posix() for n in sorted(filenames)]
    got = [f.path for f in LocalSource(tmp_path).list_files()]
    assert got == expected == ["a.b", "top", "a/z", "b/file", "b/a/x", "b/a/c/deep", "c/d/e/f/g"]
    assert [f.size for f in LocalSource(tmp_path).list_files()] == [len(p) for p in expected]


def test_paths_are_relative_to_a_root_that_ends_with_the_separator() -> None:
    """A source at the file-system root: its paths lose the leading "/" and nothing else."""
    source = LocalSource("/")
    assert source._relative("/etc/hosts") == "etc/hosts"
    assert source._problem("/srv/a b/c.dcm", "broken_link", "x").path == "srv/a b/c.dcm"


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


def _odd_tree(root: Path) -> None:
    """A good file beside every kind of entry the listing cannot ingest."""
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "good.dcm").write_bytes(b"data")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "link_to_good").symlink_to(root / "sub" / "good.dcm")
    (root / "folder_link").symlink_to(root / "sub")
    os.mkfifo(root / "pipe")
    with open(os.fsencode(root) + b"/caf\xe9.dcm", "wb") as fh:  # Latin-1 name: not valid UTF-8
        fh.write(b"latin")


def test_listing_accounts_for_links_fifos_and_bad_names(tmp_path: Path) -> None:
    _odd_tree(tmp_path)
    src = LocalSource(tmp_path)
    entries = {safe_name(e.path): e for e in src.list_entries()}
    problems = {name: e.problem for name, e in entries.items()}
    assert problems == {
        "caf\\xe9.dcm": INVALID_NAME,
        "dangling": BROKEN_LINK,
        "folder_link": NOT_REGULAR_FILE,
        "link_to_good": "",
        "loop_a": LINK_LOOP,
        "loop_b": LINK_LOOP,
        "pipe": NOT_REGULAR_FILE,
        "sub/good.dcm": "",
    }
    assert all(e.detail for e in entries.values() if e.problem)
    assert sorted(f.path for f in src.list_files()) == ["link_to_good", "sub/good.dcm"]


def _list_as_nobody(root: Path) -> dict[str, str]:
    """List `root` in a child process that dropped root's privileges (root reads every file regardless)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()

    def work() -> None:
        os.setgid(65534)
        os.setuid(65534)
        child.send({e.path: e.problem for e in LocalSource(root).list_entries()})

    proc = ctx.Process(target=work)
    proc.start()
    result: dict[str, str] = parent.recv()
    proc.join(30)
    return result


def test_unreadable_folder_and_file_are_listed_as_unreadable() -> None:
    root = Path(tempfile.mkdtemp(prefix="hlip-perm-"))
    try:
        (root / "closed").mkdir()
        (root / "closed" / "inside.dcm").write_bytes(b"x")
        (root / "secret.dcm").write_bytes(b"x")
        (root / "open.dcm").write_bytes(b"x")
        root.chmod(0o755)
        (root / "closed").chmod(0o000)
        (root / "secret.dcm").chmod(0o000)
        (root / "open.dcm").chmod(0o644)
        if os.geteuid() == 0:
            found = _list_as_nobody(root)
        else:
            found = {e.path: e.problem for e in LocalSource(root).list_entries()}
        assert found == {"closed": UNREADABLE, "open.dcm": "", "secret.dcm": UNREADABLE}
    finally:
        (root / "closed").chmod(0o755)
        shutil.rmtree(root)
