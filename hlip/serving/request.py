"""One request row of the served model, checked and turned into something ingest can read.

A row names its study in exactly one way:

- `study_archive`: the study's DICOM files as a zip or tar, base64-encoded; extracted safely (`archive`) into a
  private work folder that is removed when the row is done;
- `study_path`: a folder or `s3://` prefix under one of the deployment's allowed roots (`policy`); the path is
  resolved first (links followed, `..` refused), and a folder whose files link outside the roots is refused;
- `scan_paths`: already ingested uint8 `.npy` volumes, each under an allowed root.

Before any pixel is decoded, the study's files are counted and their headers read: a study with more files, more
bytes or more voxels (rows x columns x frames, summed) than the limits, or with no DICOM file at all, is refused.
Every refusal is a `RequestError` whose message names no server path (not even the one the client sent).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlip.serving.archive import extract_archive
from hlip.serving.policy import RequestError, ServingLimits, ServingPolicy

log = logging.getLogger(__name__)

ARCHIVE, PATH, SCANS = "study_archive", "study_path", "scan_paths"
INPUTS = (ARCHIVE, PATH, SCANS)
OUTSIDE = "not an existing folder or file under the deployment's allowed roots"


@dataclass(frozen=True)
class StudyRequest:
    """A checked request: a DICOM source for ingest (a local folder or `s3://` prefix), or ingested volumes.

    Attributes:
        source: Folder or prefix to ingest; empty when `scan_paths` are given.
        scan_paths: Ingested uint8 `.npy` volumes, in the client's order.
        kind: Which input the row used (`study_archive`, `study_path` or `scan_paths`).
    """

    source: str = ""
    scan_paths: tuple[str, ...] = ()
    kind: str = ""


@contextmanager
def work_folder(policy: ServingPolicy) -> Iterator[Path]:
    """A private (mode 0700) temporary folder for one row, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="hlip-serve-", dir=policy.work_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.error("a serving work folder could not be removed")


def present(value: Any) -> bool:
    """Whether a cell holds a value (pandas fills a missing optional column with None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str | bytes):
        return bool(value)
    if isinstance(value, list | tuple | np.ndarray):
        return len(value) > 0
    return True


def open_request(row: Mapping[str, Any], policy: ServingPolicy, work: Path) -> StudyRequest:
    """Check one row against the policy and make its study readable by ingest.

    Args:
        row: The row's cells by column name.
        policy: The deployment's roots and limits.
        work: The row's private work folder (an uploaded archive is extracted under it).

    Raises:
        RequestError: The row is refused (see the module docstring).
    """
    given = [k for k in INPUTS if present(row.get(k))]
    if len(given) != 1:
        raise RequestError("bad_request", f"a row needs exactly one of {', '.join(INPUTS)}; got {given or 'none'}")
    kind, value = given[0], row[given[0]]
    if kind == ARCHIVE:
        folder = work / "upload"
        extract_archive(decode_base64(value, policy.limits), folder, policy.limits)
        check_study(folder, policy.limits)
        return StudyRequest(source=str(folder), kind=kind)
    if kind == PATH:
        if not isinstance(value, str):
            raise RequestError("bad_request", "study_path must be a string")
        source = allowed_s3_prefix(value, policy) if value.startswith("s3://") else str(allowed_folder(value, policy))
        check_study(source, policy.limits)
        return StudyRequest(source=source, kind=kind)
    if not isinstance(value, list | tuple | np.ndarray) or not all(isinstance(p, str) for p in value):
        raise RequestError("bad_request", "scan_paths must be a list of strings")
    return StudyRequest(scan_paths=tuple(allowed_volumes(list(value), policy)), kind=kind)


def decode_base64(text: Any, limits: ServingLimits) -> bytes:
    """The uploaded archive's bytes; an over-long text is refused before it is decoded.

    Raises:
        RequestError: `bad_request` (not a base64 string) or `upload_too_large`.
    """
    if not isinstance(text, str):
        raise RequestError("bad_request", "study_archive must be a base64 string")
    if len(text) > 4 * (limits.max_upload_bytes // 3 + 1) + len(text) // 38 + 4:  # base64 + line breaks (76 chars)
        raise RequestError("upload_too_large", f"the archive is over the {limits.max_upload_bytes}-byte upload limit")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError("bad_request", "study_archive is not valid base64") from exc
    if len(data) > limits.max_upload_bytes:
        raise RequestError("upload_too_large", f"the archive is over the {limits.max_upload_bytes}-byte upload limit")
    return data


def allowed_path(ref: str, policy: ServingPolicy) -> Path:
    """`ref` resolved (links followed, strictly: it must exist) when it lies under an allowed local root.

    The same refusal is given for a missing path and for one outside the roots, so a client cannot probe which
    server paths exist.

    Raises:
        RequestError: `path_not_allowed`.
    """
    roots = policy.local_roots
    if not roots:
        raise RequestError("path_not_allowed", "this deployment accepts no study paths; send study_archive instead")
    path = Path(ref)
    if not path.is_absolute():
        raise RequestError("path_not_allowed", "study paths must be absolute")
    if ".." in path.parts:
        raise RequestError("path_not_allowed", "'..' is not allowed in a study path")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, unreadable, or a link loop
        raise RequestError("path_not_allowed", f"the study path is {OUTSIDE}") from exc
    if not any(resolved.is_relative_to(root) for root in roots):
        raise RequestError("path_not_allowed", f"the study path is {OUTSIDE}")
    return resolved


def allowed_folder(ref: str, policy: ServingPolicy) -> Path:
    """An allowed study folder whose entries (files and folders) link nowhere outside the allowed roots.

    Raises:
        RequestError: `path_not_allowed`.
    """
    folder = allowed_path(ref, policy)
    if not folder.is_dir():
        raise RequestError("path_not_allowed", "the study path is not a folder")
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in (*dirnames, *filenames):
            entry = Path(dirpath) / name
            if entry.is_symlink() and not _inside(entry.resolve(), policy.local_roots):
                raise RequestError(
                    "path_not_allowed", "the study folder holds a link that leads outside the allowed roots"
                )
    return folder


def allowed_s3_prefix(ref: str, policy: ServingPolicy) -> str:
    """`s3://bucket/prefix/` in canonical form when it lies under an allowed S3 root.

    Raises:
        RequestError: `path_not_allowed` (no S3 root allows it, or `.`/`..`/empty segments).
    """
    bucket, _, key = ref[len("s3://") :].partition("/")
    parts = key.rstrip("/").split("/") if key.strip("/") else []
    if not bucket or any(p in ("", ".", "..") for p in parts):
        raise RequestError("path_not_allowed", "an s3:// study path needs a bucket and no '.', '..' or empty segments")
    uri = f"s3://{bucket}/" + "".join(p + "/" for p in parts)
    if not any(uri.startswith(root) for root in policy.s3_roots):
        raise RequestError("path_not_allowed", "the s3:// study path is not under the deployment's allowed prefixes")
    return uri


def allowed_volumes(paths: Sequence[str], policy: ServingPolicy) -> list[str]:
    """Ingested volumes, each an allowed `.npy` file; their voxels (from the `.npy` headers) within the limit.

    Raises:
        RequestError: `path_not_allowed`, `too_many_files`, `bad_request` (not a volume) or `too_many_voxels`.
    """
    if len(paths) > policy.limits.max_files:
        raise RequestError("too_many_files", f"{len(paths)} scans, over the limit {policy.limits.max_files}")
    resolved = [allowed_path(p, policy) for p in paths]
    voxels = 0
    for path in resolved:
        if not path.is_file() or path.suffix != ".npy":
            raise RequestError("bad_request", "scan_paths must name ingested .npy volumes")
        voxels += _npy_voxels(path)
    if voxels > policy.limits.max_voxels:
        raise RequestError("too_many_voxels", f"{voxels} voxels, over the limit {policy.limits.max_voxels}")
    return [str(p) for p in resolved]


def check_study(source: str | Path, limits: ServingLimits) -> int:
    """Count the study's files, bytes and voxels (from headers, before decoding); return its voxels.

    Raises:
        RequestError: `too_many_files`, `too_large`, `too_many_voxels`, `not_dicom` or `unreadable`.
    """
    from hlip.data.dicom import read_instance
    from hlip.data.quarantine import RejectedError
    from hlip.data.source import SourceError, open_source

    try:
        src = open_source(str(source))
        files = list(src.list_files())
    except (SourceError, OSError) as exc:
        raise RequestError("unreadable", "the study's files cannot be listed") from exc
    if len(files) > limits.max_files:
        raise RequestError("too_many_files", f"the study has {len(files)} files, over the limit {limits.max_files}")
    total = sum(f.size for f in files)
    if total > limits.max_uncompressed_bytes:
        raise RequestError(
            "too_large", f"the study holds {total} bytes, over the limit {limits.max_uncompressed_bytes}"
        )
    voxels, dicom = 0, 0
    for f in files:
        try:
            header = read_instance(src, f.path, f.size).header
        except RejectedError:
            continue  # not DICOM, truncated...: ingest quarantines it with its reason
        dicom += 1
        frames = max(_int(header.get("NumberOfFrames")), 1)
        voxels += _int(header.get("Rows")) * _int(header.get("Columns")) * frames
        if voxels > limits.max_voxels:
            raise RequestError("too_many_voxels", f"the study holds over {limits.max_voxels} voxels (from its headers)")
    if not dicom:
        raise RequestError("not_dicom", f"none of the study's {len(files)} files is a readable DICOM file")
    return voxels


def public_message(exc: Exception, *paths: str | Path) -> str:
    """The message of an error met while reading or scoring an accepted study, safe to send back: an OS error
    becomes its kind and reason only (its message names the file), and any of `paths` (the work folder, the
    study's folder) left in another message is replaced by `<study>`."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: the study could not be read ({exc.strerror or 'I/O error'})"
    message = str(exc)
    for path in sorted((str(p) for p in paths if str(p)), key=len, reverse=True):
        message = message.replace(path, "<study>")
    return message


def json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The answer with every NaN or infinity replaced by None (JSON null): MLflow's scoring server writes floats
    with Python's `json`, which would emit the invalid token `NaN`."""
    out = frame.astype(object)
    return out.where(out.map(_finite), None)


def _finite(value: Any) -> bool:
    return not (value is None or (isinstance(value, float) and not math.isfinite(value)))


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _int(value: Any) -> int:
    try:
        return int(value) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def _npy_voxels(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = reader(fh)
    except (OSError, ValueError) as exc:
        raise RequestError("bad_request", "a scan path is not a readable .npy volume") from exc
    return int(np.prod(shape))
