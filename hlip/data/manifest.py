"""The manifest tables written by ingestion: their parquet schemas, and atomic reading and writing.

Tables (under the output folder):
- `studies.parquet`: one row per study (keys only: study, patient, accession; counts; fingerprint).
- `scans.parquet`: one row per model-ready scan (kind, plane, window, shape, spacing, geometry, voxel stats, path).
- `reports.parquet`: one row per scrubbed report.
- `quarantine.parquet`: one row per rejected file, series part, study or report.
- `files.parquet`: one row per input file with its disposition (the accounting, and the incremental cache).

The tables are a deterministic function of the inputs: what changes from run to run without the inputs changing
(file modification times, S3 ETags) lives in `.state/versions.parquet`, which `.dvcignore` keeps out of the
output's hash, so the same inputs give the same `dvc.lock` on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_str, _int, _float, _bool = pa.string(), pa.int64(), pa.float64(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "studies": pa.schema(
        [
            ("study_key", _str),
            ("patient_key", _str),
            ("accession_key", _str),
            ("modalities", _str),
            ("n_files", _int),
            ("n_series", _int),
            ("n_scans", _int),
            ("n_quarantined_files", _int),
            ("has_report", _bool),
            ("status", _str),
            ("fingerprint", _str),
        ]
    ),
    "scans": pa.schema(
        [
            ("study_key", _str),
            ("series_key", _str),
            ("scan_key", _str),
            ("modality", _str),
            ("kind", _str),
            ("plane", _str),
            ("window", _str),
            ("ct_kernel", _str),
            ("b_value", _float),
            ("reason", _str),
            ("shape", pa.list_(_int)),
            ("spacing", pa.list_(_float)),
            ("affine", pa.list_(_float)),
            ("source_shape", pa.list_(_int)),
            ("source_spacing", pa.list_(_float)),
            ("n_slices", _int),
            ("source_series_count", _int),
            ("path", _str),
            ("voxel_mean", _float),
            ("voxel_std", _float),
            ("voxel_min", _int),
            ("voxel_max", _int),
            ("nonzero_fraction", _float),
            ("header", _str),
        ]
    ),
    "reports": pa.schema([("study_key", _str), ("report_key", _str), ("text", _str), ("n_redactions", _int)]),
    "quarantine": pa.schema(
        [
            ("entry_id", _str),
            ("level", _str),
            ("subject", _str),
            ("reason", _str),
            ("message", _str),
            ("study_key", _str),
            ("series_key", _str),
        ]
    ),
    "files": pa.schema(
        [
            ("path", _str),
            ("size", _int),
            ("study_key", _str),
            ("series_key", _str),
            ("sop_key", _str),
            ("accession_key", _str),
            ("header_reason", _str),
            ("header_message", _str),
            ("disposition", _str),
            ("ref", _str),
        ]
    ),
}
SORT_KEYS = {
    "studies": ["study_key"],
    "scans": ["study_key", "scan_key"],
    "reports": ["study_key", "report_key"],
    "quarantine": ["level", "subject", "reason"],
    "files": ["path"],
}


def write_table(out_dir: str | os.PathLike[str], name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one table atomically (a temporary file renamed into place), rows sorted for stable diffs.

    Args:
        out_dir: The output folder.
        name: A key of `SCHEMAS`.
        rows: The rows; missing columns are null, extra keys are an error.

    Returns:
        The path written.
    """
    schema = SCHEMAS[name]
    columns = schema.names
    data = [dict(r) for r in rows]
    for row in data:
        extra = set(row) - set(columns)
        if extra:
            raise ValueError(f"{name}: unexpected columns {sorted(extra)}")
    data.sort(key=lambda r: tuple(str(r.get(k, "")) for k in SORT_KEYS[name]))
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in data], schema=schema)
    path = Path(out_dir) / f"{name}.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_table(out_dir: str | os.PathLike[str], name: str) -> list[dict[str, Any]]:
    """Read a table as rows; a missing table, or one of another schema (an older version), reads as empty."""
    path = Path(out_dir) / f"{name}.parquet"
    if not path.exists():
        return []
    table = pq.read_table(path)
    if not table.schema.equals(SCHEMAS[name], check_metadata=False):
        return []
    return list(table.to_pylist())


STATE_DIR = ".state"
_VERSIONS = pa.schema([("path", _str), ("version", _str)])


def write_versions(out_dir: str | os.PathLike[str], versions: Mapping[str, str]) -> Path:
    """Save each file's version stamp (path label -> mtime/ETag), the incremental change detector."""
    folder = Path(out_dir) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"path": p, "version": v} for p, v in sorted(versions.items())]
    path = folder / "versions.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=_VERSIONS), tmp)
    os.replace(tmp, path)
    return path


def read_versions(out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The saved version stamps; empty when absent (then every file's header is read again)."""
    path = Path(out_dir) / STATE_DIR / "versions.parquet"
    if not path.exists():
        return {}
    return {str(r["path"]): str(r["version"]) for r in pq.read_table(path).to_pylist()}
