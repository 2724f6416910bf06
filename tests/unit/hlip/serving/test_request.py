"""Request rows: what is accepted, and a refusal (naming no server path) for everything else."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.serving.policy import RequestError, ServingLimits, ServingPolicy
from hlip.serving.request import check_study, json_safe, open_request, public_message, work_folder

from .conftest import dicom_bytes, zip_of


def policy_for(*roots: Path | str, **limits: int) -> ServingPolicy:
    return ServingPolicy(tuple(str(r) for r in roots), ServingLimits(**limits))


def refused(row: dict[str, object], policy: ServingPolicy, work: Path, code: str, *secrets: str) -> str:
    """Assert the row is refused with `code` and a message that names none of `secrets` (server paths)."""
    with pytest.raises(RequestError) as err:
        open_request(row, policy, work)
    assert err.value.code == code, str(err.value)
    for secret in secrets:
        assert secret not in str(err.value)
    return str(err.value)


def test_an_archive_is_extracted_and_checked(tmp_path: Path, b64: Callable[[bytes], str]) -> None:
    row = {"study_archive": b64(zip_of({"s/1.dcm": dicom_bytes(), "s/2.dcm": dicom_bytes(), "notes.txt": b"hi"}))}
    req = open_request(row, ServingPolicy(), tmp_path)  # archives need no roots
    assert req.kind == "study_archive"
    assert sorted(p.name for p in Path(req.source).iterdir()) == ["00000.dcm", "00001.dcm", "00002.dcm"]
    assert Path(req.source).is_relative_to(tmp_path)


def test_base64_with_line_breaks_is_accepted(tmp_path: Path) -> None:
    text = base64.encodebytes(zip_of({"1.dcm": dicom_bytes()})).decode()  # wrapped at 76 characters
    assert "\n" in text
    assert open_request({"study_archive": text}, ServingPolicy(), tmp_path).source


def test_an_allowed_folder_is_resolved(study_dir: Path, tmp_path: Path) -> None:
    req = open_request({"study_path": str(study_dir)}, policy_for(study_dir.parent), tmp_path)
    assert (req.kind, req.source) == ("study_path", str(study_dir.resolve()))


def test_a_link_inside_the_roots_is_followed(study_dir: Path, tmp_path: Path) -> None:
    (study_dir.parent / "alias").symlink_to(study_dir)
    req = open_request({"study_path": str(study_dir.parent / "alias")}, policy_for(study_dir.parent), tmp_path)
    assert req.source == str(study_dir.resolve())


def test_paths_are_refused_when_the_deployment_names_no_roots(study_dir: Path, tmp_path: Path) -> None:
    message = refused({"study_path": str(study_dir)}, ServingPolicy(), tmp_path, "path_not_allowed", str(study_dir))
    assert "study_archive" in message  # says what to send instead


@pytest.mark.parametrize("ref", ["/etc", "/", "relative/study", "/root/study/../../etc"])
def test_paths_outside_the_roots_or_traversing_are_refused(study_dir: Path, tmp_path: Path, ref: str) -> None:
    ref = ref.replace("/root/study", str(study_dir))
    refused({"study_path": ref}, policy_for(study_dir.parent), tmp_path, "path_not_allowed", ref, "/etc")


def test_a_missing_path_gets_the_same_refusal_as_one_outside(study_dir: Path, tmp_path: Path) -> None:
    policy = policy_for(study_dir.parent)
    missing = refused({"study_path": str(study_dir.parent / "nope")}, policy, tmp_path, "path_not_allowed", "nope")
    outside = refused({"study_path": "/etc"}, policy, tmp_path, "path_not_allowed")
    assert missing == outside  # a client cannot probe which server paths exist


def test_a_link_escaping_the_roots_is_refused(study_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "x.dcm").write_bytes(dicom_bytes())
    (study_dir.parent / "escape").symlink_to(outside)
    policy = policy_for(study_dir.parent)
    refused({"study_path": str(study_dir.parent / "escape")}, policy, tmp_path, "path_not_allowed", str(outside))
    (study_dir / "leak.dcm").symlink_to(outside / "x.dcm")  # a file of an allowed study linking outside
    message = refused({"study_path": str(study_dir)}, policy, tmp_path, "path_not_allowed", str(outside))
    assert "link" in message


def test_a_file_is_not_a_study_folder(study_dir: Path, tmp_path: Path) -> None:
    refused({"study_path": str(study_dir / "0.dcm")}, policy_for(study_dir.parent), tmp_path, "path_not_allowed")


@pytest.mark.parametrize(
    ("ref", "ok"),
    [("s3://studies/incoming/s1", True), ("s3://studies/incoming", True), ("s3://studies/incoming2/s1", False),
     ("s3://studies/incoming/../private", False), ("s3://studies/incoming//x", False),
     ("s3://other/incoming/s1", False), ("s3:///incoming", False)],
)  # fmt: skip
def test_s3_prefixes_must_lie_under_an_allowed_prefix(tmp_path: Path, ref: str, ok: bool) -> None:
    from hlip.serving.request import allowed_s3_prefix

    policy = policy_for("s3://studies/incoming")
    if ok:
        assert allowed_s3_prefix(ref, policy).startswith("s3://studies/incoming/")
    else:
        refused({"study_path": ref}, policy, tmp_path, "path_not_allowed")


def test_study_limits_are_checked_from_headers_before_decoding(study_dir: Path) -> None:
    assert check_study(study_dir, ServingLimits()) == 3 * 8 * 8
    (study_dir / "cine.dcm").write_bytes(dicom_bytes(rows=8, cols=8, frames=50))
    assert check_study(study_dir, ServingLimits()) == 3 * 64 + 50 * 64
    with pytest.raises(RequestError) as err:
        check_study(study_dir, ServingLimits(max_voxels=1000))
    assert err.value.code == "too_many_voxels"
    with pytest.raises(RequestError) as err:
        check_study(study_dir, ServingLimits(max_files=3))
    assert err.value.code == "too_many_files"
    with pytest.raises(RequestError) as err:
        check_study(study_dir, ServingLimits(max_uncompressed_bytes=100))
    assert err.value.code == "too_large"


def test_an_archive_without_dicom_is_refused(tmp_path: Path, b64: Callable[[bytes], str]) -> None:
    row = {"study_archive": b64(zip_of({"a.txt": b"hello", "b.bin": bytes(range(256))}))}
    message = refused(row, ServingPolicy(), tmp_path, "not_dicom", str(tmp_path))
    assert "2 files" in message


def test_an_oversized_upload_is_refused_before_decoding(tmp_path: Path, b64: Callable[[bytes], str]) -> None:
    row = {"study_archive": b64(zip_of({"1.dcm": dicom_bytes()}) + b"\0" * 4000)}
    refused(row, policy_for(max_upload_bytes=1000), tmp_path, "upload_too_large")
    refused({"study_archive": "A" * 10_000}, policy_for(max_upload_bytes=1000), tmp_path, "upload_too_large")


@pytest.mark.parametrize(
    "row",
    [{}, {"study_path": None, "scan_paths": float("nan")}, {"study_archive": "!!not base64!!"},
     {"study_path": "/x", "study_archive": "AAAA"}, {"study_archive": 5}, {"scan_paths": [1, 2]}],
)  # fmt: skip
def test_malformed_rows_are_refused(tmp_path: Path, row: dict[str, object]) -> None:
    refused(row, ServingPolicy(), tmp_path, "bad_request")


def test_scan_paths_are_allow_listed_and_voxel_bounded(tmp_path: Path) -> None:
    root = tmp_path / "ingested"
    root.mkdir()
    for name in ("a", "b"):
        np.save(root / f"{name}.npy", np.zeros((4, 8, 8), np.uint8))
    paths = [str(root / "a.npy"), str(root / "b.npy")]
    assert open_request({"scan_paths": paths}, policy_for(root), tmp_path).scan_paths == tuple(paths)
    refused({"scan_paths": paths}, policy_for(root, max_voxels=300), tmp_path, "too_many_voxels")
    refused({"scan_paths": [*paths, "/etc/passwd"]}, policy_for(root), tmp_path, "path_not_allowed", "/etc/passwd")
    (root / "notes.txt").write_text("x")
    refused({"scan_paths": [str(root / "notes.txt")]}, policy_for(root), tmp_path, "bad_request")


def test_work_folders_are_private_and_always_removed(tmp_path: Path) -> None:
    policy = ServingPolicy(work_dir=str(tmp_path))
    modes = []

    def failing_row() -> None:
        with work_folder(policy) as work:
            (work / "f").write_text("x")
            modes.append(work.stat().st_mode & 0o777)
            raise RuntimeError("a failed row")

    with pytest.raises(RuntimeError):
        failing_row()
    assert modes == [0o700]
    assert not list(tmp_path.iterdir())


def test_answers_are_json_safe() -> None:
    frame = pd.DataFrame([{"p": float("nan"), "e": [], "error": "x"}, {"p": 0.25, "e": [0.1], "error": ""}])
    safe = json_safe(frame)
    text = json.dumps(safe.to_dict(orient="records"))  # what MLflow's scoring server does
    assert "NaN" not in text
    assert json.loads(text) == [{"p": None, "e": [], "error": "x"}, {"p": 0.25, "e": [0.1], "error": ""}]
    assert math.isnan(frame["p"][0])  # the input frame is left as it was


def test_public_messages_name_no_server_path(tmp_path: Path) -> None:
    missing = tmp_path / "work" / "ingest" / "x.npy"
    with pytest.raises(FileNotFoundError) as err:
        missing.read_bytes()
    assert str(tmp_path) in str(err.value)
    assert str(tmp_path) not in public_message(err.value, tmp_path)
    assert "FileNotFoundError" in public_message(err.value)
    message = public_message(ValueError(f"no usable scan in {tmp_path}/work/upload"), tmp_path / "work", tmp_path)
    assert message == "no usable scan in <study>/upload"
