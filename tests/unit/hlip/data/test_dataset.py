"""StudyDataset, scan/text policies, collation and the resumable loader on a synthetic part folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hlip.data.dataset import (
    ResumableSampler,
    ScanPolicy,
    StudyDataset,
    TextPolicy,
    collate_studies,
    make_loader,
    positive_rates,
)
from hlip.data.sampling import canonical_order, report_text, select_scans, split_sections
from hlip.labels.table import to_matrix
from testkit.training_data import FINDINGS, write_synthetic_part


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("part")
    return out, write_synthetic_part(out, n_studies=10, max_scans=4)


def test_items_skip_unusable_studies_and_carry_labels(part: tuple[Path, pd.DataFrame]) -> None:
    folder, long = part
    matrix = to_matrix(long, FINDINGS).astype("float32")
    ds = StudyDataset(folder, text_policy=TextPolicy(), labels=matrix, train=False)
    # study0 has no report, study0009 is not ok
    assert ds.study_keys == [f"study{i:04d}" for i in range(1, 9)]
    assert len(StudyDataset(folder, train=False)) == 9  # no text needed: study0 counts
    item = ds[3]  # study0004: 1 + 4 % 4 = 1 scan; i % 5 == 4 -> first finding uncertain
    assert item["study_key"] == "study0004"
    assert item["image"].dtype == torch.uint8
    assert item["image"].shape == (1, 1, 16, 32, 32)
    assert math.isnan(float(item["labels"][0]))
    assert float(item["labels"][1]) == 0.0
    assert item["report"] is not None
    assert "[NAME]" not in item["report"]
    assert "Lesion a absent." in item["report"]


def test_max_n_draws_distinct_scans_reproducibly(part: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = part
    ds = StudyDataset(folder, scans_policy=ScanPolicy("max_n", 2), train=True, seed=3)
    index = ds.study_keys.index("study0003")  # 4 scans
    a, b = ds[(0, index)]["image"], ds[(0, index)]["image"]
    assert a.shape[0] == 2
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    draws = {tuple(ds[(e, index)]["image"][:, 0, 0, 0, :4].flatten().tolist()) for e in range(8)}
    assert len(draws) > 1  # other epochs draw other subsets / orders


def test_fixed_n_tiles_like_upstream() -> None:
    order = [0, 1, 2]
    assert select_scans(order, ScanPolicy("fixed_n", 7), None) == [0, 1, 2, 0, 1, 2, 0]
    assert select_scans(order, ScanPolicy("fixed_n", 2), None) == [0, 1]
    drawn = select_scans(order, ScanPolicy("fixed_n", 6), np.random.default_rng(0))
    assert sorted(drawn) == [0, 0, 1, 1, 2, 2]
    assert drawn[:3] == drawn[3:]
    assert select_scans(order, ScanPolicy("all"), np.random.default_rng(0)) == order
    with pytest.raises(ValueError, match="mode"):
        ScanPolicy("some")


def test_canonical_order_is_kind_then_plane() -> None:
    kinds, planes = ["dwi", "t1", "other", "t1"], ["axial", "sagittal", "axial", "axial"]
    assert canonical_order(kinds, planes, ["a", "b", "c", "d"]) == [3, 1, 0, 2]


def test_report_sections_drop_identifier_lines_and_shuffle_within_sections() -> None:
    text = (
        "Patient: [NAME]   MRN: [ID]   DOB: [DATE]\nEXAM: MRI BRAIN\nFINDINGS:\nA one. B two. C three. D four.\n"
        "IMPRESSION:\n1. First.\n2. Second.\nElectronically [NAME]\n"
    )
    sections = split_sections(text)
    assert sections == [("EXAM:", ["MRI BRAIN"]), ("FINDINGS:", ["A one.", "B two.", "C three.", "D four."]),
                        ("IMPRESSION:", ["First.", "Second."])]  # fmt: skip
    assert report_text(text, None, None) == "EXAM: MRI BRAIN\nFINDINGS: A one. B two. C three. D four.\n" \
        "IMPRESSION: First. Second."  # fmt: skip
    plain = report_text(text, None, None)
    shuffled = {report_text(text, TextPolicy(), np.random.default_rng(s)) for s in range(10)}
    assert len(shuffled) > 1
    assert all(t.splitlines()[1].startswith("FINDINGS:") and sorted(t) == sorted(plain) for t in shuffled)
    single = report_text(text, TextPolicy(single_sentence_prob=1.0), np.random.default_rng(0))
    assert "\n" not in single
    assert single in {"MRI BRAIN", "A one.", "B two.", "C three.", "D four.", "First.", "Second."}


def test_lead_sections_come_first_in_their_order_and_the_rest_keep_theirs() -> None:
    text = (
        "EXAM: MRI BRAIN\nIndication: Seizure.\nFINDINGS:\nA one. B two.\nIMPRESSION:\n1. First.\n2. Second.\n"
        "COMPARISON: None.\n"
    )
    policy = TextPolicy(shuffle_sentences=False, lead_sections=("impression", "Findings:"))
    assert report_text(text, policy, None).splitlines() == [
        "IMPRESSION: First. Second.", "FINDINGS: A one. B two.", "EXAM: MRI BRAIN", "Indication: Seizure.",
        "COMPARISON: None.",
    ]  # fmt: skip
    # a named section the report lacks changes nothing; shuffling stays within each section, which stay in place
    assert report_text(text, TextPolicy(shuffle_sentences=False, lead_sections=("technique",)), None) == \
        report_text(text, None, None)  # fmt: skip
    lead = TextPolicy(lead_sections=("impression",))
    shuffled = {report_text(text, lead, np.random.default_rng(s)) for s in range(8)}
    assert len(shuffled) > 1
    assert all(t.startswith("IMPRESSION: ") and len(t.splitlines()) == 5 for t in shuffled)
    for bad in (("impression", "IMPRESSION:"), ("",), (" : ",)):
        with pytest.raises(ValueError, match="lead_sections"):
            TextPolicy(lead_sections=bad)


def test_full_texts_are_the_unshuffled_training_texts(part: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = part
    policy = TextPolicy(single_sentence_prob=0.5, lead_sections=("impression",))
    ds = StudyDataset(folder, text_policy=policy, train=True)
    reports = pd.read_parquet(folder / "reports.parquet").set_index("study_key")["text"]
    fixed = TextPolicy(shuffle_sentences=False, lead_sections=("impression",))
    assert ds.full_texts() == [report_text(reports[k], fixed, None) for k in ds.study_keys]
    # what training draws has the same characters (shuffled) or is one of its sentences
    drawn = ds[(1, 0)]["report"]
    assert drawn is not None
    assert sorted(drawn) == sorted(ds.full_texts()[0]) or drawn in ds.full_texts()[0]


def test_collate_pads_scans_and_scales(part: tuple[Path, pd.DataFrame]) -> None:
    folder, long = part
    ds = StudyDataset(folder, labels=to_matrix(long, FINDINGS).astype("float32"), train=False)
    items = [ds[0], ds[3]]  # 1 and 4 scans
    batch = collate_studies(items, tokenizer=lambda texts: torch.tensor([[len(t)] for t in texts]))
    assert batch["image"].shape == (2, 4, 1, 16, 32, 32)
    assert batch["image"].dtype == torch.uint8  # scaled by the model on its device
    assert batch["scan_mask"].tolist() == [[True, False, False, False], [True, True, True, True]]
    assert torch.equal(batch["image"][1, 2], items[1]["image"][2])
    assert int(batch["image"][0, 1:].sum()) == 0
    assert batch["text"].shape == (2, 1)
    assert batch["labels"].shape == (2, len(FINDINGS))


def test_sampler_resume_yields_the_rest_of_the_epoch(part: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = part
    ds = StudyDataset(folder, train=True)
    full = ResumableSampler(ds, seed=1)
    full.set_epoch(2)
    keys = list(full)
    assert {k[0] for k in keys} == {2}
    assert sorted(k[1] for k in keys) == list(range(len(ds)))
    resumed = ResumableSampler(ds, seed=1)
    resumed.set_epoch(2)
    resumed.set_start(4)
    assert list(resumed) == keys[4:]
    assert len(resumed) == len(ds) - 4
    ranks = [ResumableSampler(ds, num_replicas=2, rank=r, seed=1, drop_last=True) for r in (0, 1)]
    halves = [list(s) for s in ranks]
    assert len(halves[0]) == len(halves[1]) == len(ds) // 2
    assert not set(halves[0]) & set(halves[1])


def test_loader_batches_are_the_same_with_workers(part: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = part
    ds = StudyDataset(folder, scans_policy=ScanPolicy("max_n", 2), train=True, seed=5)
    plain = make_loader(ds, batch_size=3, workers=0, seed=5)
    pooled = make_loader(ds, batch_size=3, workers=1, seed=5)
    for epoch in (0, 1):
        plain.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        pooled.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        a, b = list(plain), list(pooled)
        assert len(a) == len(b) == len(ds) // 3
        for x, y in zip(a, b, strict=True):
            assert x["study_key"] == y["study_key"]
            assert torch.equal(x["image"], y["image"])


def test_bad_inputs_are_named(tmp_path: Path, part: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(FileNotFoundError, match=r"studies\.parquet"):
        StudyDataset(tmp_path)
    with pytest.raises(ValueError, match="no usable study"):
        StudyDataset(part[0], scans_policy=ScanPolicy(kinds=("swi",)))


def test_positive_rates_count_known_labels_only() -> None:
    long = pd.DataFrame(
        {
            "study_key": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "finding": ["x", "y", "x", "y", "x", "y", "x", "y"],
            "value": [1, -1, 0, -1, 1, -1, 0, -1],
        }
    )
    matrix = to_matrix(long, ["x", "y"]).astype("float32").reindex(["a", "b", "c", "d", "e"])  # e: no labels, NaN
    assert positive_rates(matrix) == [0.5, 0.5]  # x: 2 of 4 known; y: only uncertain -> no information
    long.loc[1, "value"] = 1
    assert positive_rates(to_matrix(long, ["x", "y"]).astype("float32")) == [0.5, 1.0]


def test_forked_workers_finish_cleanly_when_the_parent_holds_thread_exit_hooks(
    part: tuple[Path, pd.DataFrame],
) -> None:
    """Prefect's log/event services (3.8) register a thread-exit hook that fails in a forked child; a loader run
    inside a flow (or after one, in the same process) lost every worker with exit code 1 at the end of its epoch."""
    import os
    import threading

    parent = os.getpid()

    def fails_in_a_child() -> None:  # as prefect's QueueService._at_exit does after a fork
        if os.getpid() != parent:
            raise AssertionError("service state was reset by the fork")

    threading._register_atexit(fails_in_a_child)  # type: ignore[attr-defined]
    try:
        ds = StudyDataset(part[0], seed=5)
        loader = make_loader(ds, batch_size=3, workers=2, seed=5, start_method="fork", persistent_workers=False)
        keys = [k for batch in loader for k in batch["study_key"]]
        assert sorted(keys) == sorted(ds.study_keys)
    finally:
        hooks = threading._threading_atexits  # type: ignore[attr-defined]
        hooks[:] = [hook for hook in hooks if getattr(hook, "func", hook) is not fails_in_a_child]


def test_collate_writes_every_byte_of_a_batch_allocated_uninitialised(
    part: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hlip.data.dataset as dataset

    allocate = dataset._batch_array
    monkeypatch.setattr(dataset, "_batch_array", lambda shape: allocate(shape).fill_(255))  # memory left dirty
    ds = StudyDataset(part[0], train=False)
    items = [ds[3], ds[0], ds[1]]  # 4, 1 and 2 scans
    image = collate_studies(items)["image"]
    for b, item in enumerate(items):
        count = item["image"].shape[0]
        assert torch.equal(image[b, :count], item["image"])
        assert int(image[b, count:].sum()) == 0  # the padding is zeroed, whatever the memory held


def _batch_is_shared(items: list[int]) -> bool:
    from hlip.data.dataset import _batch_array

    return bool(_batch_array((len(items), 3)).is_shared())


def test_a_workers_batch_is_built_in_shared_memory() -> None:
    """In a worker the batch is allocated in shared memory, so handing it to the main process copies nothing."""
    from torch.utils.data import DataLoader

    from hlip.data.dataset import _batch_array, drop_inherited_exit_hooks

    assert not _batch_array((2, 3)).is_shared()  # main process: ordinary memory
    # worker_init_fn as make_loader's: Prefect's thread-exit hooks, inherited by a forked worker, fail it at exit
    loader = DataLoader(list(range(4)), batch_size=2, num_workers=1, collate_fn=_batch_is_shared,
                        worker_init_fn=drop_inherited_exit_hooks)  # fmt: skip
    assert list(loader) == [True, True]


def _rewrite_volume(folder: Path, study: str, volume: np.ndarray | bytes) -> Path:
    scans = pd.read_parquet(folder / "scans.parquet")
    path = folder / scans.loc[scans["study_key"] == study, "path"].iloc[0]
    if isinstance(volume, bytes):
        path.write_bytes(volume)
    else:
        np.save(path, volume)
    return path


def test_damaged_volumes_name_their_file(tmp_path: Path) -> None:
    write_synthetic_part(tmp_path, n_studies=6, max_scans=4)
    ds = StudyDataset(tmp_path, train=False)
    cut = _rewrite_volume(tmp_path, "study0001", (tmp_path / ds._scans[1][3][0]).read_bytes()[:-100])
    with pytest.raises(OSError, match=rf"cannot read scan volume {cut}: truncated"):
        ds[1]
    wide = _rewrite_volume(tmp_path, "study0002", np.zeros((16, 32, 32), np.float32))
    with pytest.raises(ValueError, match=rf"scan volume {wide} is float32 \[.*\], not uint8 \[D, H, W\]"):
        ds[2]
    _rewrite_volume(tmp_path, "study0003", np.zeros((16, 32, 31), np.uint8))
    shapes = r"\[\(16, 32, 31\), \(16, 32, 32\)\]"
    with pytest.raises(ValueError, match=rf"study study0003: scans of different shapes {shapes}"):
        ds[3]
    (tmp_path / ds._scans[4][3][0]).unlink()
    with pytest.raises(OSError, match=r"cannot read scan volume .*No such file"):
        ds[4]
