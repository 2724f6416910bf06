"""Safe extraction of a study sent as bytes: a zip or a tar (plain, gzip, bzip2 or xz) of its DICOM files.

Nothing in the archive decides where a byte lands: every member is checked (no absolute name, no `..`, no link,
no device or FIFO) and the regular files are written under generated names (`00000.dcm`, ...) inside the given
folder; ingest groups files by the UIDs in their headers, so member names carry no meaning it needs. The file
count and the declared uncompressed sizes are checked before anything is written, and every write is counted
again, so an archive that lies about its sizes is still stopped at the limit.
"""

from __future__ import annotations

import io
import logging
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from hlip.serving.policy import RequestError, ServingLimits

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One regular file of an archive: its name (for checks only), declared size, and how to open it."""

    name: str
    size: int
    index: int


def extract_archive(data: bytes, dest: Path, limits: ServingLimits) -> int:
    """Extract the regular files of a zip or tar archive into `dest` (created) under generated names.

    Args:
        data: The archive's bytes.
        dest: An empty private folder.
        limits: `max_upload_bytes`, `max_files` and `max_uncompressed_bytes` apply.

    Returns:
        The number of files written.

    Raises:
        RequestError: `upload_too_large`, `bad_archive` (neither zip nor tar, or damaged), `unsafe_archive`
            (absolute name, `..`, link, device), `too_many_files`, `too_large` (uncompressed bytes).
    """
    if len(data) > limits.max_upload_bytes:
        raise RequestError("upload_too_large", f"the archive is over the {limits.max_upload_bytes}-byte upload limit")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(io.BytesIO(data)):
        return _extract_zip(data, dest, limits)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            return _extract_tar(tar, dest, limits)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(
            "bad_archive", f"the upload is not a readable zip or tar archive ({type(exc).__name__})"
        ) from exc


def check_member_name(name: str) -> None:
    """Refuse a member name that could point outside the extraction folder (even though names are not used to
    place files, such an archive is malformed or hostile and is refused as a whole).

    Raises:
        RequestError: `unsafe_archive`.
    """
    if not name or "\x00" in name:
        raise RequestError("unsafe_archive", "an archive member has an empty or NUL-containing name")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise RequestError("unsafe_archive", "an archive member has an absolute name")
    if "\\" in name:
        raise RequestError("unsafe_archive", "an archive member name holds a backslash")
    if ".." in PurePosixPath(name).parts:
        raise RequestError("unsafe_archive", "an archive member name holds '..'")


def _check_totals(members: list[Member], limits: ServingLimits) -> None:
    if len(members) > limits.max_files:
        raise RequestError("too_many_files", f"the study has {len(members)} files, over the limit {limits.max_files}")
    total = sum(m.size for m in members)
    if total > limits.max_uncompressed_bytes:
        raise RequestError(
            "too_large", f"the study unpacks to {total} bytes, over the limit {limits.max_uncompressed_bytes}"
        )


def _extract_zip(data: bytes, dest: Path, limits: ServingLimits) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = list(_zip_members(archive))
            _check_totals(members, limits)
            budget = _Budget(limits.max_uncompressed_bytes)
            for i, m in enumerate(members):
                with archive.open(archive.infolist()[m.index]) as fh:
                    _copy(fh, dest / f"{i:05d}.dcm", budget)
            return len(members)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise RequestError("bad_archive", f"the zip archive cannot be read ({type(exc).__name__})") from exc


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for index, info in enumerate(archive.infolist()):
        check_member_name(info.filename)
        mode = info.external_attr >> 16  # Unix mode bits, when the archiver stored them (the type may be 0)
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise RequestError("unsafe_archive", f"an archive member is {kind}")
        yield Member(info.filename, info.file_size, index)


def _extract_tar(tar: tarfile.TarFile, dest: Path, limits: ServingLimits) -> int:
    infos = tar.getmembers()  # reads headers only; sizes are the declared ones
    members = []
    for index, info in enumerate(infos):
        check_member_name(info.name)
        if info.isdir():
            continue
        if info.issym() or info.islnk():
            raise RequestError("unsafe_archive", "an archive member is a link")
        if not info.isreg():
            raise RequestError("unsafe_archive", "an archive member is a device, FIFO or other special file")
        members.append(Member(info.name, info.size, index))
    _check_totals(members, limits)
    budget = _Budget(limits.max_uncompressed_bytes)
    for i, m in enumerate(members):
        fh = tar.extractfile(infos[m.index])
        if fh is None:
            raise RequestError("bad_archive", "an archive member cannot be read")
        with fh:
            _copy(fh, dest / f"{i:05d}.dcm", budget)
    return len(members)


class _Budget:
    """Bytes still allowed to be written; stops an archive whose real sizes exceed the declared ones."""

    def __init__(self, total: int) -> None:
        self.left = total

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise RequestError("too_large", "the study unpacks to more bytes than the limit")


def _copy(fh: IO[bytes], target: Path, budget: _Budget) -> None:
    # "xb": a generated name never collides, and an existing file (or link) is never followed or overwritten
    with target.open("xb") as out:
        while chunk := fh.read(CHUNK):
            budget.spend(len(chunk))
            out.write(chunk)
