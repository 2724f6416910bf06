"""A scheduled run's result reaches the configured remotes, and another machine can restore exactly that data.

Real git and real DVC: a repository with a DVC-tracked folder, a bare git remote and a local-folder DVC remote.
`save_result` + `push` must put the result branch and its lineage ref on the git remote and the tracked data in
the DVC remote, so that a fresh clone of the remote, at the pushed commit, `dvc pull`s the same bytes. A remote
that cannot be reached fails loudly with the command named, and the result commit stays in the local repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hlip.lineage.repro import BRANCH, ReproError, data_md5, push, record_data, save_result
from testkit.dvc_repo import dvc

pytestmark = pytest.mark.integration
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repository whose `data/` holds two studies' worth of bytes, committed once."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "work"
    (root / "data/train").mkdir(parents=True)
    (root / "data/train/a.dcm").write_bytes(os.urandom(4096))
    (root / "data/train/b.dcm").write_bytes(os.urandom(2048))
    git(root.parent, "init", "--quiet", str(root))
    dvc(root, "init", "--quiet")
    dvc(root, "config", "core.analytics", "false")
    record_data(root)
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "code and data pointer")
    return root


def test_push_without_remotes_pushes_nothing(repo: Path) -> None:
    commit = save_result(repo, "scheduled run")
    assert push(repo, commit) == []
    assert git(repo, "rev-parse", BRANCH) == commit


def test_pushed_result_restores_the_same_data_on_another_machine(repo: Path, tmp_path: Path) -> None:
    remote_git = tmp_path / "remote.git"
    remote_dvc = tmp_path / "remote-dvc"
    git(tmp_path, "init", "--quiet", "--bare", str(remote_git))
    git(repo, "remote", "add", "origin", str(remote_git))
    dvc(repo, "remote", "add", "--default", "store", str(remote_dvc))
    git(repo, "commit", "--quiet", "-m", "the team's DVC remote", ".dvc/config")  # part of the code: every clone has it
    code_head = git(repo, "rev-parse", "HEAD")

    (repo / "data/train/c.dcm").write_bytes(os.urandom(1024))  # new studies arrive
    before, after = record_data(repo)
    assert before != after
    commit = save_result(repo, f"Scheduled run: data {after}")
    assert git(repo, "rev-parse", "HEAD") == code_head  # the checkout is left alone

    assert push(repo, commit) == ["git:origin", "dvc:default"]
    assert git(remote_git, "rev-parse", f"refs/heads/{BRANCH}") == commit
    assert git(remote_git, "rev-parse", f"refs/hlip/lineage/{commit}") == commit

    # another machine: clone the remote, check out the scheduled result, pull its data from the DVC remote
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", "--branch", BRANCH, str(remote_git), str(other))
    assert git(other, "rev-parse", "HEAD") == commit
    assert data_md5(other) == after
    dvc(other, "pull", "--quiet")
    pulled = sorted(p.relative_to(other / "data") for p in (other / "data").rglob("*") if p.is_file())
    assert [str(p) for p in pulled] == ["train/a.dcm", "train/b.dcm", "train/c.dcm"]
    for rel in pulled:
        assert (other / "data" / rel).read_bytes() == (repo / "data" / rel).read_bytes()


def test_an_unreachable_git_remote_fails_loudly_and_keeps_the_local_result(repo: Path, tmp_path: Path) -> None:
    git(repo, "remote", "add", "origin", str(tmp_path / "no-such-remote.git"))
    commit = save_result(repo, "scheduled run")
    with pytest.raises(ReproError, match=r"`git push --quiet origin refs/heads/hlip/scheduled"):
        push(repo, commit)
    assert git(repo, "rev-parse", BRANCH) == commit
    assert git(repo, "rev-parse", f"refs/hlip/lineage/{commit}") == commit


def test_an_unreachable_dvc_remote_fails_loudly(repo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dvc(repo, "remote", "add", "--default", "store", str(blocker / "store"))  # under a file: cannot be created
    commit = save_result(repo, "scheduled run")
    with pytest.raises(ReproError, match=r"`dvc push --quiet` failed"):
        push(repo, commit)


def test_push_warns_when_the_raw_data_is_tracked_by_hash_only(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's `data.dvc` says `cache: false`: a push stores no raw data, and says so instead of staying quiet."""
    remote_dvc = tmp_path / "remote-dvc"
    dvc(repo, "remote", "add", "--default", "store", str(remote_dvc))
    pointer = repo / "data.dvc"
    pointer.write_text(pointer.read_text().replace("  path: data\n", "  path: data\n  cache: false\n"))
    (repo / "data/train/c.dcm").write_bytes(os.urandom(1024))
    record_data(repo)  # `dvc add` keeps the output's `cache: false`
    assert "cache: false" in pointer.read_text()
    commit = save_result(repo, "scheduled run")
    with caplog.at_level("WARNING", logger="hlip.lineage.repro"):
        assert push(repo, commit) == ["dvc:default"]
    assert any("cache: false" in r.getMessage() and "dvc add data" in r.getMessage() for r in caplog.records)
    stored = [p for p in remote_dvc.rglob("*") if p.is_file()] if remote_dvc.exists() else []
    assert stored == []  # nothing of data/ reached the remote
