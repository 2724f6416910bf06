"""Studies of an ingested part as training items: scans (uint8 volumes), report text and finding labels.

```python
ds = StudyDataset("outputs/ingest/train", scans_policy=ScanPolicy("max_n", 8), text_policy=TextPolicy(),
                  labels=to_matrix(label_table, findings), train=True, seed=0)  # hlip.labels.table
loader = make_loader(ds, batch_size=16, workers=2, tokenizer=tokenizer, seed=0)
for epoch in range(epochs):
    loader.sampler.set_epoch(epoch)
    for batch in loader:  # image [B, Nmax, 1, D, H, W] uint8 (scaled by the model), scan_mask [B, Nmax], text, ...
        ...
```

Randomness of an item (which scans, sentence order) comes from `item_rng(seed, epoch, index)`. The sampler
(`ResumableSampler`) hands the dataset `(epoch, index)` keys, so persistent workers, which hold their own copy
of the dataset, still see the current epoch, and `set_start` resumes in the middle of an epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hlip.data.augment import AUGMENT_STREAM, AugmentPolicy, augment_scans
from hlip.data.npy_read import StoredVolume, open_npy, require_training_volume
from hlip.data.sampling import ScanPolicy, TextPolicy, choose_scans, item_rng, report_text

__all__ = [
    "ResumableSampler",
    "ScanPolicy",
    "StudyDataset",
    "TextPolicy",
    "collate_studies",
    "make_loader",
    "positive_rates",
]

Item = dict[str, Any]
ItemKey = int | tuple[int, int]


class StudyDataset(Dataset[Item]):
    """One item per usable study of an ingested part folder.

    A study is usable when its status is `ok`, it has at least one scan (after `scans_policy.kinds`) and, when
    a `text_policy` is given, a report.

    Args:
        part_dir: Ingest output of one part (`studies.parquet`, `scans.parquet`, `reports.parquet`, volumes).
        scans_policy: Which scans make an item.
        text_policy: How the report is read; None: no text needed (`report` is still returned when present).
        labels: Finding labels, index `study_key`, one column per finding, values 1 / 0 / -1 (uncertain) or
            NaN (unknown); studies missing from it get all-NaN labels.
        train: Random scan choice and text augmentation (False: deterministic evaluation items).
        seed: Seed of the per-item generators.
        augment: Image augmentation of training items (`hlip.data.augment`); None or all zero: none. Never
            applied when `train` is False.

    Raises:
        FileNotFoundError: A manifest table is missing.
        ValueError: No usable study.
    """

    def __init__(
        self,
        part_dir: str | Path,
        *,
        scans_policy: ScanPolicy | None = None,
        text_policy: TextPolicy | None = None,
        labels: pd.DataFrame | None = None,
        train: bool = True,
        seed: int = 0,
        augment: AugmentPolicy | None = None,
    ) -> None:
        self.part_dir = Path(part_dir)
        self.augment = augment if augment is not None and augment.enabled and train else None
        self.scans_policy = scans_policy or ScanPolicy()
        self.text_policy = text_policy
        self.train = train
        self.seed = seed
        self.epoch = 0
        studies = _read(self.part_dir, "studies", ["study_key", "status"])
        scans = _read(self.part_dir, "scans", ["study_key", "scan_key", "kind", "plane", "path"])
        reports_file = self.part_dir / "reports.parquet"
        reports = pd.read_parquet(reports_file, columns=["study_key", "text"]) if reports_file.is_file() else None
        if self.scans_policy.kinds:
            scans = scans[scans["kind"].isin(self.scans_policy.kinds)]
        report_by_study = {} if reports is None else dict(zip(reports["study_key"], reports["text"], strict=True))
        # per study: (kinds, planes, scan keys, paths), the inputs of `choose_scans`, in one pass over plain column
        # lists (a DataFrame per study cost about 0.3 ms each and grew faster than linearly: 5 s at 16K studies)
        scans_by_study: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {}
        columns = [scans[c].astype(str).tolist() for c in ("study_key", "kind", "plane", "scan_key", "path")]
        for study, *fields in zip(*columns, strict=True):
            entry = scans_by_study.setdefault(study, ([], [], [], []))
            for values, value in zip(entry, fields, strict=True):
                values.append(value)
        keys = sorted(studies.loc[studies["status"] == "ok", "study_key"])
        keys = [k for k in keys if k in scans_by_study and (text_policy is None or k in report_by_study)]
        if not keys:
            kinds = f" of kinds {list(self.scans_policy.kinds)}" if self.scans_policy.kinds else ""
            report = ", a report" if text_policy is not None else ""
            raise ValueError(f"{self.part_dir}: no usable study (status ok, >= 1 scan{kinds}{report})")
        self.study_keys: list[str] = keys
        self._scans: list[tuple[list[str], list[str], list[str], list[str]]] = [scans_by_study[k] for k in keys]
        self._reports: list[str | None] = [report_by_study.get(k) for k in keys]
        self.findings: tuple[str, ...] = ()
        self._labels = np.zeros((len(keys), 0), dtype=np.float32)
        if labels is not None:
            self.findings = tuple(str(c) for c in labels.columns)
            matrix = np.array(labels.reindex(keys).to_numpy(dtype=np.float32, na_value=np.nan))  # [len, F]
            matrix[matrix < 0] = np.nan  # uncertain -> unknown
            self._labels = matrix

    def __len__(self) -> int:
        return len(self.study_keys)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer keys (keys from `ResumableSampler` carry their epoch)."""
        self.epoch = epoch

    def num_scans(self, index: int) -> int:
        """Scans of study `index` available to the policy (before sampling)."""
        return len(self._scans[index][0])

    def __getitem__(self, key: ItemKey) -> Item:
        """Item of `key` (an index, or `(epoch, index)`).

        Returns:
            `study_key` str, `scan_keys` (the chosen scans, in stacking order), `image` uint8 `[N, 1, D, H, W]`,
            `report` str | None, `labels` float32 `[F]`
            (1 / 0, NaN where uncertain or unknown).
        """
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < len(self):
            raise IndexError(f"study index {index} out of range for {len(self)} studies")
        rng = item_rng(self.seed, epoch, index) if self.train else None
        kinds, planes, scan_keys, paths = self._scans[index]
        chosen = choose_scans(kinds, planes, scan_keys, self.scans_policy, rng)
        stacked = self._stack(index, [paths[i] for i in chosen])  # [N, D, H, W] uint8
        if self.augment is not None:
            stacked = augment_scans(stacked, self.augment, item_rng(self.seed, epoch, index, AUGMENT_STREAM))
        image = torch.from_numpy(stacked[:, None])  # [N, 1, D, H, W] uint8
        raw = self._reports[index]
        report = None if raw is None else report_text(raw, self.text_policy, rng)
        return {
            "study_key": self.study_keys[index],
            "scan_keys": [scan_keys[i] for i in chosen],
            "image": image,
            "report": report,
            "labels": torch.from_numpy(self._labels[index].copy()),
        }

    def training_text(self, index: int) -> str:
        """Study `index`'s report as training reads it when the text policy draws nothing at random
        (`TextPolicy.deterministic`): the same string `__getitem__` returns in every epoch ("" without a report)."""
        policy = self.text_policy
        if self.train and policy is not None and not policy.deterministic:
            raise ValueError("the training text changes between epochs under this text policy")
        raw = self._reports[index]
        return "" if raw is None else report_text(raw, policy, None)

    def full_texts(self) -> list[str]:
        """Every study's report (those with one) as the text policy reads it with nothing drawn at random: sections in
        the policy's order, sentences unshuffled, never one sentence alone. Shuffling does not change a text's length,
        so this is what a length check of the training texts reads (`pretrain` logs how many overflow the context)."""
        base = self.text_policy or TextPolicy()
        policy = dataclasses.replace(base, shuffle_sentences=False, single_sentence_prob=0.0)
        return [report_text(raw, policy, None) for raw in self._reports if raw is not None]

    def _stack(self, index: int, relatives: list[str]) -> NDArray[np.uint8]:
        """The volumes at `relatives`, stacked `[N, D, H, W]`: every header read first, so that the study array is
        allocated once, then each volume's data read straight into its slot (`hlip.data.npy_read`)."""
        with contextlib.ExitStack() as files:
            stored = [
                (
                    relative,
                    require_training_volume(self._stored(relative, files), f"scan volume {self._name(relative)}"),
                )
                for relative in relatives
            ]
            shapes = {volume.shape for _, volume in stored}
            if len(shapes) != 1:
                raise ValueError(f"study {self.study_keys[index]}: scans of different shapes {sorted(shapes)}")
            out = np.empty((len(stored), *shapes.pop()), dtype=np.uint8)
            for i, (relative, volume) in enumerate(stored):
                try:
                    volume.fill(out[i])
                except OSError as exc:
                    raise OSError(f"cannot read scan volume {self._name(relative)}: {exc}") from exc
        return out

    def _stored(self, relative: str, files: contextlib.ExitStack) -> StoredVolume:
        """The volume at `relative` with its header read (the file stays open in `files` until it is read)."""
        try:
            return open_npy(files.enter_context(open(self.part_dir / relative, "rb")))
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read scan volume {self._name(relative)}: {exc}") from exc

    def _name(self, relative: str) -> str:
        """How messages name the volume at `relative`."""
        return str(self.part_dir / relative)


def _read(part_dir: Path, table: str, columns: list[str]) -> pd.DataFrame:
    path = part_dir / f"{table}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {part_dir} an ingest output folder?")
    frame = pd.read_parquet(path)
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    return frame


def positive_rates(labels: pd.DataFrame) -> list[float]:
    """Share of positives among the known labels of each finding column of a label matrix (uncertain -1 and
    unknown NaN left out; 0.5 for a finding without any known label)."""
    known = labels.isin([0, 1])
    positives = (labels == 1).sum()
    return [float(positives[c] / known[c].sum()) if known[c].any() else 0.5 for c in labels.columns]


def collate_studies(items: Sequence[Item], tokenizer: Callable[[list[str]], Tensor] | None = None) -> dict[str, Any]:
    """Batch items of different scan counts, padding the scan axis.

    Returns:
        `study_key` list[str]; `image` uint8 `[B, Nmax, 1, D, H, W]` (the models scale it to [0, 1] on their
        device: a quarter of the float32 bytes through worker shared memory, pinning and the host-to-device copy);
        `scan_mask` bool `[B, Nmax]` (True = real scan); `report` list[str] ("" where none); `labels` float32
        `[B, F]`; and `text` int64 `[B, L]` when a tokenizer is given.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    counts = [item["image"].shape[0] for item in items]
    volume_shapes = {tuple(item["image"].shape[1:]) for item in items}
    if len(volume_shapes) != 1:
        raise ValueError(f"studies in a batch have different scan shapes {sorted(volume_shapes)}")
    (shape,) = volume_shapes
    image = _batch_array((len(items), max(counts), *shape))  # [B, Nmax, 1, D, H, W] uint8
    scan_mask = torch.zeros((len(items), max(counts)), dtype=torch.bool)  # [B, Nmax]
    for b, item in enumerate(items):
        image[b, : counts[b]] = item["image"]
        image[b, counts[b] :] = 0  # only the padding is zeroed: the rest is written once
        scan_mask[b, : counts[b]] = True
    reports = [item["report"] or "" for item in items]
    batch: dict[str, Any] = {
        "study_key": [item["study_key"] for item in items],
        "image": image,
        "scan_mask": scan_mask,
        "report": reports,
        "labels": torch.stack([item["labels"] for item in items]),
    }
    if tokenizer is not None:
        batch["text"] = tokenizer(reports)
    return batch


def _batch_array(shape: tuple[int, ...]) -> Tensor:
    """An uninitialised uint8 tensor for a batch's images; in a DataLoader worker, in shared memory already, as
    torch's `default_collate` does, so that handing the batch to the main process does not copy it once more."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))  # uint8: one byte per element
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


class ResumableSampler(DistributedSampler[int]):
    """`DistributedSampler` (also for one process) that yields `(epoch, index)` keys and can start mid-epoch.

    The permutation of an epoch depends only on `(seed, epoch)`, as in `DistributedSampler`. `set_start(k)`
    skips this rank's first `k` samples of the current epoch (a resumed run); it resets on `set_epoch`.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)  # fmt: skip
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Start a new epoch from its beginning."""
        super().set_epoch(epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first `start` samples of this rank in the current epoch."""
        self.start = start

    def __iter__(self) -> Iterator[ItemKey]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def make_loader(
    dataset: StudyDataset,
    *,
    batch_size: int,
    workers: int = 0,
    tokenizer: Callable[[list[str]], Tensor] | None = None,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool | None = None,
    persistent_workers: bool = True,
    prefetch_factor: int = 2,
    start_method: str | None = None,
) -> DataLoader[Item]:
    """A DataLoader over `dataset` with a `ResumableSampler` (`loader.sampler`).

    Args:
        dataset: The studies.
        batch_size: Studies per batch on this rank.
        workers: Worker processes (0: load in the main process).
        tokenizer: Tokenizes the reports into `text` in the collate function (runs in the workers).
        shuffle: Shuffle every epoch; default: `dataset.train`.
        drop_last: Drop the last incomplete batch; default: `dataset.train`.
        seed: Seed of the epoch permutations.
        rank: This process's rank; default: `torch.distributed` when initialised, else 0.
        world_size: Number of processes; default likewise.
        pin_memory: Default: True when CUDA is available.
        persistent_workers: Keep the workers between epochs (when `workers > 0`).
        prefetch_factor: Batches loaded ahead per worker.
        start_method: How workers start (`fork`, `forkserver`, `spawn`); None: the platform default.
    """
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
    world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
    train = dataset.train if shuffle is None else shuffle
    drop = dataset.train if drop_last is None else drop_last
    sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=drop)
    generator = torch.Generator().manual_seed(seed)  # keeps the loader off the global RNG (exact resume)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=partial(collate_studies, tokenizer=tokenizer),
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop,
        persistent_workers=persistent_workers and workers > 0,
        prefetch_factor=prefetch_factor if workers > 0 else None,
        multiprocessing_context=start_method if workers > 0 else None,
        worker_init_fn=drop_inherited_exit_hooks if workers > 0 else None,
        generator=generator,
    )


def drop_inherited_exit_hooks(worker_id: int) -> None:
    """Start a DataLoader worker without the thread-exit hooks its parent registered.

    A forked worker inherits `threading`'s exit hooks, which belong to threads that do not exist in the worker.
    Prefect's log and event services (3.8) register one that fails in a forked child, so every worker run inside a
    Prefect flow (or after one, in the same process) exited with code 1 at its end: "DataLoader worker exited
    unexpectedly", a failed epoch. Hooks the worker registers itself are kept.
    """
    import threading

    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list behind threading._register_atexit
    if isinstance(hooks, list):
        hooks.clear()
