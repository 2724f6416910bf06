"""Safe extraction of uploaded study archives: every unsafe or oversized archive is refused, nothing escapes."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from hlip.serving.archive import extract_archive
from hlip.serving.policy import RequestError, ServingLimits

from .conftest import dicom_bytes, tar_of, zip_of

LIMITS = ServingLimits(max_upload_bytes=1 << 20, max_uncompressed_bytes=1 << 20, max_files=10)


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_members_are_written_under_generated_names(tmp_path: Path, mode: str) -> None:
    data = {"a/b/one.dcm": dicom_bytes(), "two": b"x" * 10}
    archive = tar_of([_info("a/"[:-1], tarfile.DIRTYPE), _info("a/b/one.dcm"), _info("two")], data, mode)
    assert extract_archive(archive, tmp_path / "out", LIMITS) == 2
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["00000.dcm", "00001.dcm"]
    assert (tmp_path / "out" / "00000.dcm").read_bytes() == data["a/b/one.dcm"]


def test_zip_members_are_extracted_and_folders_skipped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("series/", b"")
        z.writestr("series/1.dcm", dicom_bytes())
    assert extract_archive(buf.getvalue(), tmp_path / "out", LIMITS) == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["00000.dcm"]


@pytest.mark.parametrize(
    ("name", "match"),
    [("/etc/passwd", "absolute"), ("../../evil.dcm", r"'\.\.'"), ("a/../../b", r"'\.\.'"),
     ("C:/x.dcm", "absolute"), ("a\\..\\b", "backslash")],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_unsafe_member_names_refuse_the_whole_archive(tmp_path: Path, name: str, match: str, fmt: str) -> None:
    archive = (
        zip_of({"ok.dcm": b"1", name: b"2"})
        if fmt == "zip"
        else tar_of([_info("ok"), _info(name)], {"ok": b"1", name: b"2"})
    )
    with pytest.raises(RequestError, match=match) as err:
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "unsafe_archive"
    assert not list((tmp_path / "out").iterdir())  # refused before anything was written
    assert not (tmp_path / "evil.dcm").exists()


@pytest.mark.parametrize(
    ("member", "match"),
    [(_info("l", tarfile.SYMTYPE, "/etc/passwd"), "link"), (_info("h", tarfile.LNKTYPE, "ok"), "link"),
     (_info("d", tarfile.CHRTYPE), "device"), (_info("f", tarfile.FIFOTYPE), "FIFO")],
)  # fmt: skip
def test_tar_links_and_special_files_are_refused(tmp_path: Path, member: tarfile.TarInfo, match: str) -> None:
    with pytest.raises(RequestError, match=match) as err:
        extract_archive(tar_of([_info("ok"), member], {"ok": b"1"}), tmp_path / "out", LIMITS)
    assert err.value.code == "unsafe_archive"


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # a symbolic link, as Info-ZIP stores one
        z.writestr(info, "/etc/passwd")
    with pytest.raises(RequestError, match="symbolic link") as err:
        extract_archive(buf.getvalue(), tmp_path / "out", LIMITS)
    assert err.value.code == "unsafe_archive"


def test_zip_bomb_is_refused_from_declared_sizes(tmp_path: Path) -> None:
    bomb = zip_of({"zeros.dcm": b"\0" * (2 << 20)})  # 2 MiB of zeros compress to a few KiB
    assert len(bomb) < LIMITS.max_upload_bytes
    with pytest.raises(RequestError, match="unpacks to") as err:
        extract_archive(bomb, tmp_path / "out", LIMITS)
    assert err.value.code == "too_large"
    assert not list((tmp_path / "out").iterdir())


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    archive = zip_of({f"{i}.dcm": b"1" for i in range(LIMITS.max_files + 1)})
    with pytest.raises(RequestError) as err:
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "too_many_files"


def test_oversized_upload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RequestError) as err:
        extract_archive(b"\0" * (LIMITS.max_upload_bytes + 1), tmp_path / "out", LIMITS)
    assert err.value.code == "upload_too_large"


@pytest.mark.parametrize("data", [b"plain text, not an archive", dicom_bytes(), b""])
def test_non_archives_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(RequestError) as err:
        extract_archive(data, tmp_path / "out", LIMITS)
    assert err.value.code == "bad_archive"


def test_a_tar_that_lies_about_its_sizes_is_stopped_while_writing(tmp_path: Path) -> None:
    # a gzip stream whose member headers claim small sizes cannot grow past them (tarfile reads `size` bytes),
    # but the byte budget is still counted per write: check it stops at the limit with many honest members
    limits = ServingLimits(max_upload_bytes=1 << 20, max_uncompressed_bytes=100, max_files=10)
    archive = tar_of([_info("a"), _info("b")], {"a": b"x" * 60, "b": b"y" * 60})
    with pytest.raises(RequestError) as err:
        extract_archive(archive, tmp_path / "out", limits)
    assert err.value.code == "too_large"
