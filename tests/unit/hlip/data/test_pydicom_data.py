"""Every DICOM file pydicom ships (including its DICOMDIR tree of several patients): no crash, each file used or
quarantined with a reason, and the files untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom.data

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest
from hlip.data.quarantine import Reason
from testkit.files import sha_tree


def test_every_pydicom_test_file_is_accounted_for(tmp_path: Path) -> None:
    shipped = [Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()]
    root = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]
    before = sha_tree(root)
    config = IngestConfig.from_dict({"workers": 1, "deid": {"hash_paths": False}})  # readable paths to assert on
    summary = ingest(root, tmp_path / "out", config=config, key=HashKey("k"))
    assert sha_tree(root) == before
    files = pd.read_parquet(tmp_path / "out" / "files.parquet").set_index("path")
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet").set_index("entry_id")
    assert {p.relative_to(root).as_posix() for p in shipped} <= set(files.index)
    assert summary["files"] == len(files) == len(before)
    for path, row in files.iterrows():
        if row.disposition == "quarantined":
            entry = quarantine.loc[row.ref]
            assert entry.reason in {r.value for r in Reason}, path
            assert entry.message, path
        else:
            assert row.disposition == "used", path
    reasons = dict(zip(files.index, [quarantine.loc[r].reason for r in files.ref], strict=True))
    assert reasons["dicomdirtests/DICOMDIR"] == "dicomdir"
    assert reasons["README.txt"] == "not_dicom"
    assert reasons["reportsi.dcm"] == "structured_report"
    assert reasons["dicomdirtests/77654033/CR1/6154"] == "unsupported_modality"
    assert reasons["dicomdirtests/98892001/CT5N/2062"] == "too_short"  # 5-slice CT of the DICOMDIR tree
    studies = pd.read_parquet(tmp_path / "out" / "studies.parquet")
    assert len(studies) >= 5  # the DICOMDIR tree's several patients and studies are told apart by UID
