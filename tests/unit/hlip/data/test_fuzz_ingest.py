"""Seeded fuzzing of ingest: mutated DICOM files, odd names and odd file types never crash the run, every entry is
accounted for (used or quarantined with a reason), raw files are never modified, and memory stays bounded.

Each mutation gets a fresh single-file study (its own UIDs), so its outcome is its own and not a duplicate of
another file. Run with `-s` to see the outcome table (mutation kind -> disposition or reason) and the time and
peak memory of the run.
"""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest
from hlip.data.preprocess import warm_up
from hlip.data.source import safe_name
from testkit.files import sha_tree

from .conftest import RLELossless

Writer = Callable[..., list[Path]]
SEED = 20
PEAK_BOUND = 256 * 1024**2  # bytes traced by tracemalloc over the whole run
CONFIG = IngestConfig.from_dict(
    {
        "workers": 1,
        "series": {"min_slices": 1},  # single-file studies go all the way to their pixels
        "preprocess": {"size": [4, 8, 8], "spacing": None, "size_mode": "resize"},
        "deid": {"hash_paths": False},  # readable paths: the test maps each entry back to its mutation
    }
)
PIXEL_TAG = b"\xe0\x7f\x10\x00"


def _pixel_offset(data: bytes) -> int:
    return data.rindex(PIXEL_TAG)


def _set(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def _claim(path: Path, tag: bytes, length: int) -> None:
    """Rewrite the 4-byte length of the explicit-VR long element `tag` (OB/OW/UN: 2 reserved bytes first)."""
    data = path.read_bytes()
    i = data.rindex(tag)
    path.write_bytes(data[: i + 8] + struct.pack("<I", length) + data[i + 12 :])


def _private_blob(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.add_new(0x00290010, "LO", "VENDOR")
    ds.add_new(0x00291010, "OB", b"\x00" * 8)
    ds.save_as(path)


class Corpus:
    """Writes the fuzz corpus and remembers which listed entries each mutation kind made."""

    def __init__(self, root: Path, write_series: Writer, rng: np.random.Generator) -> None:
        self.root, self.write, self.rng = root, write_series, rng
        self.kind_of: dict[str, str] = {}
        self.unreadable: list[Path] = []

    def one(self, kind: str, **tags: object) -> Path:
        """A fresh single-file study for `kind`."""
        path = self.write(self.root / kind / str(len(self.kind_of)), n=1, **tags)[0]
        self.kind_of[path.relative_to(self.root).as_posix()] = kind
        return path

    def entry(self, kind: str, path: Path) -> None:
        self.kind_of[safe_name(os.fsdecode(path.relative_to(self.root)))] = kind

    def bytes_mutations(self) -> None:
        for _ in range(2):
            p = self.one("truncate_header")
            data = p.read_bytes()
            p.write_bytes(data[: int(self.rng.integers(140, _pixel_offset(data)))])
            p = self.one("truncate_pixels")
            data = p.read_bytes()
            p.write_bytes(data[: int(self.rng.integers(_pixel_offset(data) + 12, len(data) - 1))])
            p = self.one("flip_header_bytes")
            data = bytearray(p.read_bytes())
            for i in self.rng.integers(132, _pixel_offset(data), size=6):
                data[i] ^= int(self.rng.integers(1, 256))
            p.write_bytes(bytes(data))
            p = self.one("random_bytes")
            p.write_bytes(self.rng.integers(0, 256, size=int(self.rng.integers(1, 4096)), dtype=np.uint8).tobytes())
        p = self.one("bad_magic")
        data = bytearray(p.read_bytes())
        data[128:132] = b"DICX"
        p.write_bytes(bytes(data))
        self.one("empty").write_bytes(b"")
        self.one("text").write_text("Patient: Quixote\n" * 40)

    def value_mutations(self) -> None:
        values: dict[str, dict[str, object]] = {
            "frames_2^31-1": {"NumberOfFrames": 2**31 - 1},
            "matrix_65535": {"Rows": 65535, "Columns": 65535},
            "bits_allocated_13": {"BitsAllocated": 13},
            "slope_1e300": {"RescaleSlope": 1e300},
            "slope_0": {"RescaleSlope": 0},
            "intercept_-1e300": {"RescaleIntercept": -1e300},
            "spacing_1e30": {"PixelSpacing": [1e30, 1e30]},
            "spacing_negative": {"PixelSpacing": [-1.0, 1.0]},
            "no_study_uid": {"StudyInstanceUID": ""},
        }
        for kind, tags in values.items():
            _set(self.one(kind), **tags)
        p = self.one("huge_element_length")
        _private_blob(p)
        _claim(p, b"\x29\x00\x10\x10", 0xFFFFFFF0)
        _claim(self.one("huge_pixel_length"), PIXEL_TAG, 0xFFFFFFF0)
        self.one("rle_compressed", transfer_syntax=RLELossless)

    def names_and_types(self) -> None:
        good = self.one("plain_single_file")
        folder = self.root / "names"
        folder.mkdir()
        for kind, raw in (
            ("name_not_utf8", b"Quixote_\xe9\xff.dcm"),
            ("name_odd_utf8", "a b\n\u00e9\U0001f600".encode()),
        ):
            target = os.fsencode(folder) + b"/" + raw
            original = self.one(kind)
            with open(target, "wb") as fh:
                fh.write(original.read_bytes())
            original.unlink()  # only the renamed copy stays
            del self.kind_of[original.relative_to(self.root).as_posix()]
            self.entry(kind, Path(os.fsdecode(target)))
        links = self.root / "links"
        links.mkdir()
        os.mkfifo(links / "fifo")
        (links / "dangling").symlink_to(links / "nowhere")
        (links / "loop_a").symlink_to(links / "loop_b")
        (links / "loop_b").symlink_to(links / "loop_a")
        (links / "to_file").symlink_to(good)
        (links / "to_folder").symlink_to(good.parent)
        odd = {"fifo": "fifo", "dangling": "broken_link", "loop_a": "link_loop", "loop_b": "link_loop"}
        for name, kind in {**odd, "to_file": "link_to_file", "to_folder": "link_to_folder"}.items():
            self.entry(kind, links / name)
        secret = self.one("no_read_permission")
        self.unreadable.append(secret)
        closed = self.one("unreadable_folder").parent
        self.unreadable.append(closed)
        if os.geteuid() != 0:  # root reads it anyway (then the file inside is listed and used as usual)
            self.kind_of = {p: k for p, k in self.kind_of.items() if k != "unreadable_folder"}
            self.entry("unreadable_folder", closed)

    def series_mutations(self) -> None:
        for name, tags in (("good_series", {}), ("burned_in_annotation", {"BurnedInAnnotation": "YES"})):
            for path in self.write(self.root / name, n=3, **tags):
                self.kind_of[path.relative_to(self.root).as_posix()] = name
        study = pydicom.uid.generate_uid()
        for patient in ("PID-1", "PID-2"):
            path = self.write(self.root / "identity" / patient, n=1, study_uid=study, PatientID=patient)[0]
            self.kind_of[path.relative_to(self.root).as_posix()] = "two_patient_ids"


def _outcomes(out: Path) -> dict[str, str]:
    files = pd.read_parquet(out / "files.parquet")
    quarantine = pd.read_parquet(out / "quarantine.parquet").set_index("entry_id")
    outcome = {}
    for row in files.itertuples():
        if row.disposition == "used":
            outcome[row.path] = "used"
        else:
            assert row.disposition == "quarantined", row
            entry = quarantine.loc[row.ref]
            assert entry.reason, row  # a reason code and a message, always
            assert entry.message, row
            outcome[row.path] = f"{entry.level}:{entry.reason}"
    return outcome


def test_fuzzed_corpus_never_crashes_and_accounts_for_every_entry(tmp_path: Path, write_series: Writer) -> None:
    corpus = Corpus(tmp_path / "raw", write_series, np.random.default_rng(SEED))
    corpus.bytes_mutations()
    corpus.value_mutations()
    corpus.series_mutations()
    corpus.names_and_types()
    before = sha_tree(corpus.root)
    for path in corpus.unreadable:
        path.chmod(0o000)
    warm_up()  # lazy imports done before tracing: their import is neither the run's memory nor its time
    start = time.perf_counter()
    tracemalloc.start()
    try:
        summary = ingest(corpus.root, tmp_path / "out", config=CONFIG, key=HashKey("fuzz"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        for path in corpus.unreadable:
            path.chmod(0o755)
    seconds = time.perf_counter() - start

    outcome = _outcomes(tmp_path / "out")
    assert sorted(outcome) == sorted(corpus.kind_of)  # every entry, and nothing else, in the files table
    assert summary["files_listed"] == len(corpus.kind_of)
    assert sha_tree(corpus.root) == before  # raw files never modified
    assert peak < PEAK_BOUND
    assert not [p for p, o in outcome.items() if o.endswith("internal_error")]  # no guard had to catch a bug

    table: dict[str, set[str]] = defaultdict(set)
    for path, kind in corpus.kind_of.items():
        table[kind].add(outcome[path])
    print(f"\nfuzz run: {len(outcome)} entries, {seconds:.1f} s, tracemalloc peak {peak / 1024**2:.1f} MiB")
    for kind in sorted(table):
        print(f"| {kind} | {', '.join(sorted(table[kind]))} |")
    # the outcomes that must not drift: a mutation that breaks a file never ends up used
    never_used = set(table) - {"good_series", "plain_single_file", "rle_compressed", "name_odd_utf8", "link_to_file",
                               "no_read_permission", "unreadable_folder", "flip_header_bytes"}  # fmt: skip
    for kind in never_used:
        assert "used" not in table[kind], (kind, table[kind])
    assert table["good_series"] == {"used"}
    assert table["frames_2^31-1"] == {"file:implausible_header"}
    assert table["huge_element_length"] == {"file:truncated"}
    assert table["slope_1e300"] == {"file:implausible_rescale"}
    assert table["name_not_utf8"] == {"file:invalid_name"}
    assert table["two_patient_ids"] == {"study:identity_conflict"}
    assert table["burned_in_annotation"] == {"series:burned_in_annotation"}
