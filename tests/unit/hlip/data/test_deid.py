"""De-identification: keyed hashes and the PS3.15 basic profile on headers."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from hlip.data.deid import DEMO_KEY, HashKey, deidentify

from .conftest import PATIENT


def test_keyed_hashes_are_stable_per_secret_and_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = HashKey("secret-a"), HashKey("secret-b")
    assert a.hash("study", "1.2.3") == HashKey("secret-a").hash("study", "1.2.3")
    assert a.hash("study", "1.2.3") != b.hash("study", "1.2.3")
    assert a.hash("study", "1.2.3") != a.hash("series", "1.2.3")
    assert a.uid("1.2.3").startswith("2.25.")
    assert len(a.uid("1.2.3")) <= 64
    assert "secret-a" not in repr(a)
    assert pickle.loads(pickle.dumps(a)).hash("x", "y") == a.hash("x", "y")
    monkeypatch.delenv("HLIP_DEID_KEY", raising=False)
    demo = HashKey.from_env()
    assert demo.source == "demo"
    assert demo.key_id == HashKey(DEMO_KEY).key_id
    monkeypatch.setenv("HLIP_DEID_KEY", "from-env")
    assert HashKey.from_env().key_id == HashKey("from-env").key_id


def test_a_name_that_is_not_utf8_hashes_as_its_raw_bytes() -> None:
    key = HashKey("secret")
    name = os.fsdecode(b"caf\xe9.dcm")  # how Python hands over a Latin-1 file name: with a surrogate escape
    assert key.hash("path", name) == key.hash("path", os.fsdecode(b"caf\xe9.dcm"))
    assert key.hash("path", name) != key.hash("path", "caf\u00e9.dcm")  # not confused with the UTF-8 spelling
    assert (
        key.hash("path", "café.dcm")
        == hmac.new(b"secret", "path\x00café.dcm".encode(), hashlib.sha256).hexdigest()[:20]
    )


def test_basic_profile_removes_every_identifier(tmp_path: Path, write_series: Callable[..., list[Path]]) -> None:
    path = write_series(tmp_path, n=1, SeriesDescription="T1 Quixote")[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ds.add_new((0x0029, 0x0010), "LO", "PRIVATE CREATOR Quixote")
    original = {e.keyword: e.value for e in ds if e.keyword}
    key = HashKey("k")
    clean = deidentify(ds, key, patient_key="pk123")
    text = clean.to_json()
    for tag, value in PATIENT.items():
        assert str(value) not in text, tag
        assert tag not in clean or tag == "PatientID" or not clean[tag].value, tag
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
        assert uid not in text
    assert clean.StudyInstanceUID == key.uid(ds.StudyInstanceUID)
    assert clean.SOPClassUID == ds.SOPClassUID  # standard UIDs identify nobody
    assert "20240102" not in text
    assert "Quixote" not in text
    assert (0x0029, 0x0010) not in clean
    assert clean.PatientID == "pk123"
    assert clean.PatientIdentityRemoved == "YES"
    assert {e.keyword: e.value for e in ds if e.keyword} == original  # the input is untouched
