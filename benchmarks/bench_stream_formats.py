"""Streaming formats for training data, side by side: the pipeline's pack vs MosaicML Streaming (MDS) vs LitData.

Issue 21 asked for the study-shard format to be chosen by measurement (S3 support, deterministic shuffling, DDP
sharding, exact mid-epoch resume). This harness writes one synthetic corpus at the upstream resolution (`--studies`
studies of `--scans` random uint8 48x224x224 scans; upstream's brain MRI corpus averages 14 scans a study) in each
format with the same shard size, and measures on the same machine in one run:

- writing: seconds and bytes (`hlip pack`'s `pack_part`; `streaming.MDSWriter` with an `ndarray:uint8` column;
  `litdata.optimize` with one worker);
- reading from the local folder: studies/s of a seeded random permutation (the training pattern), each study
  reduced to the same 8 scans the training policy (`max_n 8`) chooses; the peers read a whole sample and index it,
  the pack reads the chosen scans' byte ranges;
- reading from S3 (a SeaweedFS server started on 127.0.0.1, the same upload code for every format): the same
  permutation from a cold cache, the time to the first study, one epoch through each format's own loader and
  shuffle, and the most bytes the local cache held during each (the peers download whole shards; the pack reads
  byte ranges and caches only its manifests);
- deterministic order (two readers built with the same seed give the same epoch order) and exact mid-epoch resume
  (a reader stopped after some batches and restored from its state gives the rest of the uninterrupted epoch),
  each checked by running it, not by reading the docs.

The peers are not dependencies of the pipeline (mosaicml-streaming 0.13.0 pins numpy<2.2 and transformers<5, both
older than the pipeline's; both want torchvision, which has no CPU build here). Install them into a scratch folder:

    pip install --target /tmp/stream-peers --no-deps mosaicml-streaming==0.13.0 litdata==0.2.76 \\
        lightning-utilities xxhash zstd python-snappy cramjam catalogue obstore tifffile Brotli
    .venv/bin/python benchmarks/bench_stream_formats.py --peers /tmp/stream-peers [--studies 16] [--scans 12]

A torchvision stand-in of plain classes is installed for the import (nothing of it runs). Numbers depend on the
machine and its load: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hlip.numerics import pin_portable_cpu_numerics  # noqa: E402

pin_portable_cpu_numerics()

import numpy as np  # noqa: E402
from bench_loader import write_upstream_part  # noqa: E402

SHAPE = (48, 224, 224)
CHOSEN = 8  # the training policy's max_n
NDArrayU8 = Any  # numpy uint8 arrays


class _PlainModule(types.ModuleType):
    """A module whose every attribute is a new plain class (so subclassing it keeps `type` as the metaclass)."""

    __path__: list[str] = []  # noqa: RUF012 (a package: its submodules import too)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (), {"__init__": lambda self, *a, **k: None})
        setattr(self, name, cls)
        return cls


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _PlainModule(spec.name)
        module.__version__ = "0.0"  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def load_peers(pkgs: Path) -> tuple[Any, Any]:
    """Import `streaming` (MDS) and `litdata` from a scratch package folder."""
    sys.path.insert(0, str(pkgs))
    sys.meta_path.insert(0, _TorchvisionStandIn())
    import litdata
    import litdata.streaming.downloader as lit_downloader
    import streaming

    # litdata's prefetching loader reads S3 through obstore, whose client refuses plain http (`BadScheme`) unless
    # told otherwise, and litdata builds it with fixed client options: an http endpoint (the loopback SeaweedFS)
    # needs this, as it would for any S3-compatible store served without TLS.
    lit_downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"
    return streaming, litdata


# -- the corpus and the scans a study's item keeps ------------------------------------------------------------------


def study_scans(part: Path, index: int, scans: int) -> NDArrayU8:
    """Study `index`'s scans `[scans, D, H, W]` from a part folder `write_upstream_part` wrote, in scan order."""
    key = f"study{index:05d}"
    return np.stack([np.load(part / f"volumes/{key}/scan{j}.npy") for j in range(scans)])


def chosen(index: int, scans: int, seed: int = 0) -> NDArrayU8:
    """The 8 scans (sorted) a peer keeps of study `index`: a draw of the same size as the pack reader's policy."""
    return np.sort(np.random.default_rng([seed, index]).choice(scans, size=min(CHOSEN, scans), replace=False))


# -- the formats: write, open, read one study, and a resumable epoch ------------------------------------------------


class Format:
    """One format's writer and readers. `read(reader, i)` returns study i's chosen scans `[8, D, H, W]` uint8;
    `batches(...)` yields one shuffled epoch through the format's own loader as (study keys, a function giving the
    state to resume after this batch), from the start or from such a state."""

    name = ""

    def write(self, part: Path, out: Path, shard_bytes: int, studies: int, scans: int) -> None:
        raise NotImplementedError

    def open(self, source: str, cache: Path | None, seed: int = 0, batch: int | None = None) -> Any:
        """A reader of `source` (a local folder or `s3://`; `cache` for what it downloads); `batch`: the loader's
        batch size, for a library that must know it when the dataset is made (MDS)."""
        raise NotImplementedError

    def read(self, reader: Any, index: int) -> NDArrayU8:
        raise NotImplementedError

    def batches(
        self, source: str, cache: Path | None, seed: int, batch: int, state: Any = None
    ) -> Iterator[tuple[list[str], Callable[[], Any]]]:
        raise NotImplementedError


class Pack(Format):
    name = "pack (WebDataset tar + index, byte ranges)"

    def write(self, part: Path, out: Path, shard_bytes: int, studies: int, scans: int) -> None:
        from hlip.data.pack import pack_part

        pack_part(part, out, shard_bytes=shard_bytes)

    def open(self, source: str, cache: Path | None, seed: int = 0, batch: int | None = None) -> Any:
        from hlip.data.dataset import ScanPolicy
        from hlip.data.shards import ShardStudyDataset

        return ShardStudyDataset(source, cache_dir=cache, scans_policy=ScanPolicy("max_n", CHOSEN), seed=seed)

    def read(self, reader: Any, index: int) -> NDArrayU8:
        return reader[(0, index)]["image"][:, 0].numpy()

    def batches(
        self, source: str, cache: Path | None, seed: int, batch: int, state: Any = None
    ) -> Iterator[tuple[list[str], Callable[[], Any]]]:
        from hlip.data.dataset import make_loader

        ds = self.open(source, cache, seed)
        dl = make_loader(ds, batch_size=batch, workers=0, seed=seed, drop_last=False, persistent_workers=False,
                         pin_memory=False)  # fmt: skip
        dl.sampler.set_epoch(0)  # type: ignore[attr-defined]
        done = state or 0  # the training loop's resume state: samples of this epoch already consumed
        dl.sampler.set_start(done)  # type: ignore[attr-defined]
        for b in dl:
            done += len(b["study_key"])
            yield list(b["study_key"]), functools.partial(int, done)


class Peer(Format):
    """A peer library's format: a sample is a whole study (every scan), read by index or through the library's own
    `StreamingDataLoader`, whose `state_dict` is its resume state."""

    def __init__(self, library: Any) -> None:
        self.library = library

    def read(self, reader: Any, index: int) -> NDArrayU8:
        scans = reader[index]["scans"]
        return np.ascontiguousarray(scans[chosen(index, len(scans))])

    def batches(
        self, source: str, cache: Path | None, seed: int, batch: int, state: Any = None
    ) -> Iterator[tuple[list[str], Callable[[], Any]]]:
        ds = self.open(source, cache, seed, batch)
        dl = self.library.StreamingDataLoader(ds, batch_size=batch, num_workers=0, collate_fn=collate)
        if state is not None:
            dl.load_state_dict(state)
        for b in dl:
            yield b["key"], dl.state_dict


class MDS(Peer):
    name = "MosaicML Streaming (MDS)"

    def write(self, part: Path, out: Path, shard_bytes: int, studies: int, scans: int) -> None:
        columns = {"key": "str", "scans": "ndarray:uint8"}
        with self.library.MDSWriter(out=str(out), columns=columns, size_limit=shard_bytes) as writer:
            for i in range(studies):
                writer.write({"key": f"study{i:05d}", "scans": study_scans(part, i, scans)})

    def open(self, source: str, cache: Path | None, seed: int = 0, batch: int | None = None) -> Any:
        self.library.base.util.clean_stale_shared_memory()
        remote, local = (source, str(cache)) if source.startswith("s3://") else (None, source)
        return self.library.StreamingDataset(remote=remote, local=local, shuffle=True, shuffle_seed=seed,
                                               batch_size=batch)  # fmt: skip


class Lit(Peer):
    name = "LitData"

    def write(self, part: Path, out: Path, shard_bytes: int, studies: int, scans: int) -> None:
        self.library.optimize(fn=_LitItem(part, scans), inputs=list(range(studies)), output_dir=str(out),
                              chunk_bytes=shard_bytes, num_workers=1, mode="overwrite")  # fmt: skip

    def open(self, source: str, cache: Path | None, seed: int = 0, batch: int | None = None) -> Any:
        return self.library.StreamingDataset(source, shuffle=True, seed=seed,
                                             cache_dir=str(cache) if cache else None)  # fmt: skip


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch as training would use it: the study keys and the chosen scans of every study in one array (as the
    pack's `collate_studies` builds one; its studies all have 8 here, so no padding). A dict: MDS's loader counts a
    batch by its first column (a list of keys would count the first key's characters)."""
    keys = [s["key"] for s in samples]
    scans = [s["scans"][chosen(int(k.removeprefix("study")), len(s["scans"]))]
             for k, s in zip(keys, samples, strict=True)]  # fmt: skip
    return {"key": keys, "image": np.stack(scans)}


class _LitItem:
    """litdata's `fn` (picklable: its writer runs in a worker process)."""

    def __init__(self, part: Path, scans: int) -> None:
        self.part, self.scans = part, scans

    def __call__(self, index: int) -> dict[str, Any]:
        return {"key": f"study{index:05d}", "scans": study_scans(self.part, index, self.scans)}


# -- measurements ---------------------------------------------------------------------------------------------------


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def permutation_rate(
    fmt: Format, reader: Any, order: list[int], part: Path, scans: int, cache: Path | None = None
) -> tuple[float, float, int]:
    """(studies/s over `order`, seconds to the first study, the most bytes `cache` held after any study); the
    first studies are checked against their source scans."""
    start = time.perf_counter()
    first, peak = None, 0
    for n, i in enumerate(order):
        image = fmt.read(reader, i)
        if first is None:
            first = time.perf_counter() - start
        if cache is not None:  # untimed
            t = time.perf_counter()
            peak = max(peak, folder_bytes(cache))
            start += time.perf_counter() - t
        if n < 2:  # each scan is one of the study's source scans, none twice (untimed; two studies are enough)
            t = time.perf_counter()
            source = study_scans(part, i, scans)
            found = [next((j for j, s in enumerate(source) if np.array_equal(img, s)), -1) for img in image]
            if len(found) != min(CHOSEN, scans) or -1 in found or len(set(found)) != len(found):
                raise AssertionError(f"{fmt.name}: study {i} is not {CHOSEN} distinct scans of its source ({found})")
            start += time.perf_counter() - t
    return len(order) / (time.perf_counter() - start), first or 0.0, peak


def order_and_resume(fmt: Format, source: str, cache: Callable[[], Path | None], batch: int, stop: int) -> str:
    """'yes'/'NO' for a deterministic order and for an exact mid-epoch resume, from running both: the same seed
    twice gives the same epoch, another seed another one, and an epoch stopped after `stop` batches and restored
    from its state gives the rest of the uninterrupted epoch."""

    def epoch(seed: int, state: Any = None) -> list[str]:
        keys = [k for b, _ in fmt.batches(source, cache(), seed, batch, state) for k in b]
        gc.collect()  # MDS keeps one live dataset per local folder
        return keys

    full, again, other = epoch(0), epoch(0), epoch(1)
    head, state = [], None
    for n, (keys, state_after) in enumerate(fmt.batches(source, cache(), 0, batch)):
        head += keys
        if n + 1 == stop:
            state = state_after()
            break
    gc.collect()
    rest = epoch(0, state)
    deterministic = full == again and full != other and sorted(full) == sorted(set(full))
    return f"{'yes' if deterministic else 'NO'} | {'yes' if head + rest == full else 'NO'}"


def loader_epoch(fmt: Format, source: str, cache: Path, batch: int) -> tuple[float, int]:
    """(studies/s, the most bytes `cache` held) of one epoch through the format's own loader and shuffle (the
    pack: `make_loader`'s permutation; MDS and LitData: their `StreamingDataLoader`), workers 0."""
    start, n, peak = time.perf_counter(), 0, 0
    for keys, _ in fmt.batches(source, cache, 0, batch):
        n += len(keys)
        t = time.perf_counter()
        peak = max(peak, folder_bytes(cache))
        start += time.perf_counter() - t
    return n / (time.perf_counter() - start), peak


def upload_folder(folder: Path, uri: str) -> None:
    """Every file of `folder` to `uri` (the same code for each peer; the pack uses `upload_pack`)."""
    from hlip.s3 import s3_client

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = s3_client()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, required=True, help="folder with mosaicml-streaming and litdata")
    parser.add_argument("--studies", type=int, default=16)
    parser.add_argument("--scans", type=int, default=12, help="scans per study (8 are read, as max_n 8 does)")
    parser.add_argument("--shard-mb", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_stream_formats"))
    parser.add_argument("--no-s3", dest="s3", action="store_false", help="local folders only")
    args = parser.parse_args()

    from hlip.allocator import retain_freed_memory

    retain_freed_memory()
    streaming, litdata = load_peers(args.peers)
    formats: list[Format] = [Pack(), MDS(streaming), Lit(litdata)]
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    part = work / "part"
    write_upstream_part(part, args.studies, args.scans, SHAPE)
    shard_bytes = args.shard_mb << 20
    order = [int(i) for i in np.random.default_rng(7).permutation(args.studies)]
    stop = max(1, args.studies // args.batch // 2)

    rows: dict[str, dict[str, Any]] = {}
    for n, fmt in enumerate(formats):
        out = work / f"local{n}"
        start = time.perf_counter()
        fmt.write(part, out, shard_bytes, args.studies, args.scans)
        row = rows.setdefault(fmt.name, {})
        row["write_s"] = time.perf_counter() - start
        row["bytes"] = folder_bytes(out)
        gc.collect()
        row["local_rate"], _, _ = permutation_rate(fmt, fmt.open(str(out), work / f"lc{n}"), order, part, args.scans)
        gc.collect()
        caches = (work / f"order{n}-{i}" for i in range(100))
        row["checks"] = order_and_resume(fmt, str(out), functools.partial(next, caches), args.batch, stop)

    if args.s3:
        from hlip.data.pack import upload_pack
        from local_stack import SeaweedFS

        with SeaweedFS(work / "s3", buckets=("bench",)) as server:
            env = server.client_env()  # type: ignore[attr-defined]
            os.environ.update(env)
            os.environ["S3_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]  # where MDS looks for it
            for n, fmt in enumerate(formats):
                uri = f"s3://bench/f{n}"
                start = time.perf_counter()
                if isinstance(fmt, Pack):
                    upload_pack(work / f"local{n}", uri)
                else:
                    upload_folder(work / f"local{n}", uri)
                row = rows[fmt.name]
                row["upload_s"] = time.perf_counter() - start
                cache = work / f"s3cache{n}"
                gc.collect()
                reader = fmt.open(uri, cache)
                row["s3_rate"], row["s3_first"], row["s3_cache"] = permutation_rate(fmt, reader, order, part,
                                                                                    args.scans, cache)  # fmt: skip
                del reader
                gc.collect()
                row["s3_epoch_rate"], row["s3_epoch_cache"] = loader_epoch(fmt, uri, work / f"s3epoch{n}", args.batch)
                gc.collect()
    shutil.rmtree(work, ignore_errors=True)

    size = args.studies * args.scans * int(np.prod(SHAPE))
    print(f"\n{args.studies} studies x {args.scans} scans x {'x'.join(map(str, SHAPE))} uint8 ({size / 1e9:.2f} GB), "
          f"{CHOSEN} scans read per study, shards of {args.shard_mb} MiB, batch {args.batch}; "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    head = ("| format | write s | bytes written (GB) | local random read, studies/s | same seed, same order"
            " | resume mid-epoch |")  # fmt: skip
    sep = "|---|---:|---:|---:|---|---|"
    if args.s3:
        head += (
            " upload s | S3 random read, studies/s | S3 time to first study s | most local cache, random read (GB)"
            " | S3 epoch through its own loader, studies/s | most local cache, own loader (GB) |"
        )
        sep += "---:|---:|---:|---:|---:|---:|"
    print(head)
    print(sep)
    for name, r in rows.items():
        line = f"| {name} | {r['write_s']:.1f} | {r['bytes'] / 1e9:.3f} | {r['local_rate']:.1f} | {r['checks']} |"
        if args.s3:
            line += (f" {r['upload_s']:.1f} | {r['s3_rate']:.1f} | {r['s3_first']:.2f} | {r['s3_cache'] / 1e9:.3f} |"
                     f" {r['s3_epoch_rate']:.1f} | {r['s3_epoch_cache'] / 1e9:.3f} |")  # fmt: skip
        print(line)


if __name__ == "__main__":
    main()
