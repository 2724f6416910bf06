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
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

from hlip.data.dataset import StudyDataset
from hlip.data.npy_read import StoredVolume, bytes_npy, pread_npy

MANIFESTS = ("studies", "scans", "reports")
SUMMARY = "summary.json"  # the part's ingest summary: the preprocessing it was made with travels with the pack
INDEX = "index.parquet"
SHARDS = "shards.parquet"  # one row per shard with its sha256: small, so DVC can pin terabytes of shards by it
SHARD_BYTES = 1 << 30  # 1 GiB: a few hundred upstream-size studies per shard, few objects, cheap range reads


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
        from hlip.s3 import s3_client

        client = s3_client()
    optional = ("reports.parquet", SUMMARY)
    for name in (INDEX, *(f"{m}.parquet" for m in MANIFESTS), SUMMARY):
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


class ShardStudyDataset(StudyDataset):
    """`StudyDataset` over a pack folder or `s3://` pack: same items, same sampling, volumes read by byte range.

    Args:
        root: A pack folder (`hlip pack`, `hlip.data.pack.pack_part`) or `s3://bucket/prefix` of an uploaded one.
        cache_dir: Where an S3 pack's manifests are downloaded (default: `~/.cache/hlip/packs/<bucket>/<prefix>`).
        manifests: The pack's index and manifests already fetched (`pack_folder(root)`): used as they are, so a
            run that digests them first trains on exactly those bytes and downloads them once.
        **kwargs: As `StudyDataset` (`scans_policy`, `text_policy`, `labels`, `train`, `seed`, `augment`).

    Raises:
        FileNotFoundError: The pack has no `index.parquet` or manifests.
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
            from hlip.s3 import s3_client

            self._client, self._client_pid = s3_client(), os.getpid()
        return self._client

    def _fd(self, shard: int) -> int:
        if shard not in self._files:
            self._files[shard] = os.open(Path(self.root) / self._shards[shard], os.O_RDONLY)
        return self._files[shard]

    def _get(self, shard: int, offset: int, size: int) -> bytes:
        key = f"{self._prefix}/{self._shards[shard]}".lstrip("/")
        response = self._s3().get_object(Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")
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
