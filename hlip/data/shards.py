"""Study shards: an ingested part packed into WebDataset tar files, read by byte range from a folder or `s3://`.

```python
pack_part("outputs/ingest/train", "outputs/pack/train", upload_to="s3://bucket/pack/train")  # hlip.data.pack
ds = ShardStudyDataset("s3://bucket/pack/train", scans_policy=ScanPolicy("max_n", 8), seed=0)
loader = make_loader(ds, batch_size=16, workers=8, seed=0)  # same sampler, same items as StudyDataset
```

Layout of a pack folder: `shards/shard-NNNNNN.tar` (WebDataset: one sample per study, key = study key, one member
`<study_key>.<scan_key>.npy` per scan, the scan's `.npy` bytes unchanged; studies in key order; a shard closes
past `shard_bytes`), `index.parquet` (scan path as in `scans.parquet` -> shard, data offset, size),
`shards.parquet` (shard -> bytes, sha256) and the part's manifests (`studies`, `scans`, `reports` parquet, the
ingest `summary.json`), so a pack is self-contained. Tar headers carry no time, owner or mode of the machine: the
same part packs to the same bytes (what DVC or a content-addressed store needs). Training reads a pack when
`pretrain.data.shards` names it (a folder or `s3://` URI): same items, order and weights as the part's `.npy` files.

Why byte ranges and not a sequential stream: the training sampler decides the order of studies from
(seed, epoch), and exact resume depends on it. Reading each chosen scan by range (one `pread`, or one S3 GET with
`Range`) keeps that order, DDP sharding and the sampling policy exactly as with per-scan `.npy` files, while the
data lives in a few large objects instead of millions of files. Any WebDataset reader can still stream the shards.

A dataset pins the shards it reads when it is made, so it never reads a pack its index does not describe (a shard
missing, cut short, or replaced by a re-pack of the same prefix, `hlip pack --overwrite`, under a running job):
every shard must have the byte count `shards.parquet` records; on S3 an object that carries the sha256 `hlip pack`
stores with it must carry this pack's, and every range read names the object's ETag (`If-Match`), so an object
replaced later fails the read instead of returning other bytes; a local shard's file must be the one that was
checked (same inode, size and modification time) when a process first opens it.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hlip.data.dataset import StudyDataset
from hlip.data.npy_read import StoredVolume, bytes_npy, pread_npy
from hlip.s3 import CHANGED_CODES, MISSING_CODES, error_code, s3_client

MANIFESTS = ("studies", "scans", "reports")
SUMMARY = "summary.json"  # the part's ingest summary: the preprocessing it was made with travels with the pack
INDEX = "index.parquet"
SHARDS = "shards.parquet"  # one row per shard with its sha256: small, so DVC can pin terabytes of shards by it
SHARD_BYTES = 1 << 30  # 1 GiB: a few hundred upstream-size studies per shard, few objects, cheap range reads
SHA256_METADATA = "sha256"  # the S3 object metadata (x-amz-meta-sha256) `hlip pack` uploads each shard with
_HEAD_THREADS = 16  # concurrent HEAD requests when an S3 pack's shards are pinned (thousands of shards at scale)


def pack_folder(
    root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None, client: Any = None
) -> Path:
    """The local folder holding a pack's index and manifests: the pack folder itself, or for `s3://bucket/prefix` a
    fresh download of them (shards stay on S3) into `cache_dir` (default `~/.cache/hlip/packs/<bucket>/<prefix>`).

    Raises:
        FileNotFoundError: No `index.parquet` or manifests there (the path or URI is named).
    """
    root = os.fspath(root)
    if not root.startswith("s3://"):
        return _require_index(Path(root), "is it a pack folder (hlip pack)?")
    from hlip.data.source import parse_s3_uri

    bucket, prefix = parse_s3_uri(root)
    prefix = prefix.rstrip("/")
    local = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "hlip" / "packs" / bucket / prefix
    local.mkdir(parents=True, exist_ok=True)
    if client is None:
        client = s3_client()
    optional = ("reports.parquet", SUMMARY)
    for name in (INDEX, SHARDS, *(f"{m}.parquet" for m in MANIFESTS), SUMMARY):
        key = f"{prefix}/{name}".lstrip("/")
        try:
            client.download_file(bucket, key, str(local / name))  # boto3 writes a temporary file, then renames it
        except Exception as exc:  # botocore's ClientError: reports and the summary may be absent, the rest may not
            if name not in optional:
                raise FileNotFoundError(f"{root}: cannot read {name}: {exc}") from exc
            (local / name).unlink(missing_ok=True)
    return local


def _require_index(local: Path, hint: str) -> Path:
    """`local` when it holds a pack's index, else FileNotFoundError naming it and `hint`."""
    if not (local / INDEX).is_file():
        raise FileNotFoundError(f"{local}: no {INDEX}; {hint}")
    return local


@dataclass(frozen=True)
class ShardPin:
    """What a shard was when the dataset was made: its size, and the S3 object's ETag or the local file's identity
    (device, inode, modification time in ns)."""

    size: int
    etag: str = ""
    file: tuple[int, int, int] | None = None


def recorded_shards(local: Path) -> dict[str, tuple[int, str]]:
    """shard -> (bytes, sha256) from the pack folder's `shards.parquet` (what the reader pins, what upload checks).

    Raises:
        FileNotFoundError: The folder has no `shards.parquet`.
    """
    path = local / SHARDS
    if not path.is_file():
        raise FileNotFoundError(f"{local}: no {SHARDS} (each shard's size and sha256); re-pack with `hlip pack`")
    table = pd.read_parquet(path)
    return {str(n): (int(b), str(h)) for n, b, h in zip(table["shard"], table["bytes"], table["sha256"], strict=True)}


def _refuse(root: str, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise OSError(
            f"{root}: the shards are not the ones this pack's index was written with: {'; '.join(problems[:5])}{more}"
        )


class ShardStudyDataset(StudyDataset):
    """`StudyDataset` over a pack folder or `s3://` pack: same items, same sampling, volumes read by byte range.

    Args:
        root: A pack folder (`hlip pack`, `hlip.data.pack.pack_part`) or `s3://bucket/prefix` of an uploaded one.
        cache_dir: Where an S3 pack's manifests are downloaded (default: `~/.cache/hlip/packs/<bucket>/<prefix>`).
        manifests: The pack's index and manifests already fetched (`pack_folder(root)`): used as they are, so a
            run that digests them first trains on exactly those bytes and downloads them once.
        **kwargs: As `StudyDataset` (`scans_policy`, `text_policy`, `labels`, `train`, `seed`, `augment`).

    Raises:
        FileNotFoundError: The pack has no `index.parquet`, `shards.parquet` or manifests.
        OSError: A shard the index names is missing, has another size than `shards.parquet` records, or (S3)
            carries another pack's sha256 (the message names each shard, up to five).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        manifests: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.root = os.fspath(root)
        self._bucket, self._prefix = "", ""
        self._files: dict[int, int] = {}  # shard id -> open fd, per process (never pickled to workers)
        self._client: Any = None
        self._client_pid = 0
        if self.root.startswith("s3://"):
            from hlip.data.source import parse_s3_uri

            self._bucket, prefix = parse_s3_uri(self.root)
            self._prefix = prefix.rstrip("/")
        if manifests is not None:
            local = _require_index(Path(manifests), f"fetch the manifests of {self.root} with pack_folder")
        elif self._bucket:
            local = pack_folder(self.root, cache_dir, client=self._s3())
        else:
            local = pack_folder(self.root)
        super().__init__(local, **kwargs)
        index = pd.read_parquet(local / INDEX)
        shards = sorted(index["shard"].unique())
        shard_id = {s: i for i, s in enumerate(shards)}
        self._shards: list[str] = [str(s) for s in shards]
        self._where: dict[str, tuple[int, int, int]] = {
            str(p): (shard_id[s], int(o), int(n))
            for p, s, o, n in zip(index["path"], index["shard"], index["offset"], index["size"], strict=True)
        }
        recorded = recorded_shards(local)
        _refuse(self.root, [f"{s} is not in {SHARDS}" for s in self._shards if s not in recorded])
        self._pins = self._pin_s3(recorded) if self._bucket else self._pin_local(recorded)

    def _pin_local(self, recorded: dict[str, tuple[int, str]]) -> list[ShardPin]:
        pins, problems = [], []
        for name in self._shards:
            try:
                st = os.stat(Path(self.root) / name)
            except FileNotFoundError:
                problems.append(f"{name} is missing")
                continue
            if st.st_size != recorded[name][0]:
                problems.append(f"{name} has {st.st_size} bytes, {SHARDS} records {recorded[name][0]}")
            pins.append(ShardPin(st.st_size, file=(st.st_dev, st.st_ino, st.st_mtime_ns)))
        _refuse(self.root, problems)
        return pins

    def _pin_s3(self, recorded: dict[str, tuple[int, str]]) -> list[ShardPin]:
        client = self._s3()

        def head(name: str) -> dict[str, Any] | str:
            try:
                return dict(client.head_object(Bucket=self._bucket, Key=self._key(name)))
            except Exception as exc:  # botocore's ClientError; a missing object is a 404
                if error_code(exc) in MISSING_CODES:
                    return f"{name} is missing"
                raise OSError(f"{self.root}: cannot check shard {name}: {exc}") from exc

        with ThreadPoolExecutor(_HEAD_THREADS) as pool:
            heads = list(pool.map(head, self._shards))
        pins, problems = [], []
        for name, got in zip(self._shards, heads, strict=True):
            if isinstance(got, str):
                problems.append(got)
                continue
            size, sha256 = recorded[name]
            stored = (got.get("Metadata") or {}).get(SHA256_METADATA)
            if int(got["ContentLength"]) != size:
                problems.append(f"{name} has {got['ContentLength']} bytes, {SHARDS} records {size}")
            elif stored is not None and stored != sha256:
                problems.append(f"{name} was uploaded with sha256 {stored[:12]}..., {SHARDS} records {sha256[:12]}...")
            pins.append(ShardPin(size, etag=str(got["ETag"])))
        _refuse(self.root, problems)
        return pins

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"], state["_client"] = {}, None  # file descriptors and clients belong to one process
        return state

    def __del__(self) -> None:
        for fd in getattr(self, "_files", {}).values():
            os.close(fd)

    def _s3(self) -> Any:
        # a client made before a DataLoader forked its workers would share its connections with them: one per pid
        if self._client is None or self._client_pid != os.getpid():
            self._client, self._client_pid = s3_client(), os.getpid()
        return self._client

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}".lstrip("/")

    def _fd(self, shard: int) -> int:
        if shard not in self._files:
            fd = os.open(Path(self.root) / self._shards[shard], os.O_RDONLY)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_mtime_ns) != self._pins[shard].file or st.st_size != self._pins[shard].size:
                os.close(fd)
                raise OSError(
                    f"shard {self._shards[shard]} changed since this dataset checked it (rewritten or "
                    "replaced under a running job)"
                )
            self._files[shard] = fd
        return self._files[shard]

    def _get(self, shard: int, offset: int, size: int) -> bytes:
        try:
            response = self._s3().get_object(
                Bucket=self._bucket,
                Key=self._key(self._shards[shard]),
                Range=f"bytes={offset}-{offset + size - 1}",
                IfMatch=self._pins[shard].etag,  # the object this dataset checked, never a later upload
            )
        except Exception as exc:  # botocore's ClientError
            if error_code(exc) in CHANGED_CODES:
                raise OSError(
                    f"shard {self._shards[shard]} changed on S3 since this dataset checked it (re-uploaded "
                    "under a running job)"
                ) from exc
            raise
        return bytes(response["Body"].read())

    def _stored(self, relative: str, files: contextlib.ExitStack) -> StoredVolume:
        """The volume at `relative`: a local shard's header read now and its data later straight into the study's
        array (`hlip.data.npy_read.pread_npy`); an S3 range fetched whole, then copied into it."""
        where = self._where.get(relative)
        if where is None:
            raise OSError(f"{self.root}: scan volume {relative} is not in the pack's index")
        shard, offset, size = where
        try:
            if not self._bucket:
                return pread_npy(self._fd(shard), offset, size)
            data = self._get(shard, offset, size)
            if len(data) != size:
                raise OSError(f"short read ({len(data)} of {size} bytes)")
            return bytes_npy(data)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read scan volume {self._name(relative)}: {exc}") from exc

    def _name(self, relative: str) -> str:
        where = self._where.get(relative)
        shard = self._shards[where[0]] if where else "?"
        return f"{relative} from {shard} of {self.root}"
