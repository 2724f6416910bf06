"""Packing an ingested part into study shards (the reading side is `hlip.data.shards`).

```python
summary = pack_part("outputs/ingest/train", "outputs/pack/train")                 # shards + index + manifests
pack_part("outputs/ingest/train", "outputs/pack/train",
          upload_to="s3://team-packs/2026-12-01/train", keep_shards=False)      # each shard to S3 as it closes
```

`hlip pack PART OUT [--to s3://...]` is the same from the command line. The pack's layout (WebDataset shards, one
sample per study; `index.parquet`, `shards.parquet` with each shard's sha256, the part's manifests) and how training
reads it are in `hlip.data.shards`. Tar headers carry no time, owner or mode of the machine, so the same part packs to
the same bytes (what DVC or a content-addressed store needs).

At hospital scale the shards are terabytes: with `upload_to`, each shard is uploaded as soon as it is closed and, with
`keep_shards=False`, deleted here, so the local disk holds one shard at a time. The index, `shards.parquet` and the
manifests are uploaded last: a reader that finds an index finds every shard it names. They stay in the local folder
too, small enough for DVC to track (`shards.parquet` pins every shard's bytes by sha256).

Every volume is checked before it is packed (a `.npy` of uint8 `[D, H, W]` holding exactly the bytes its header
declares), so a damaged volume stops packing with its name instead of stopping a training run days later.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hlip.data.npy_read import bytes_npy, require_training_volume
from hlip.data.shards import INDEX, MANIFESTS, SHA256_METADATA, SHARD_BYTES, SHARDS, SUMMARY, recorded_shards
from hlip.progress import ProgressReporter
from hlip.s3 import MISSING_CODES, error_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackSummary:
    """What `pack_part` wrote."""

    studies: int
    scans: int
    shards: int
    bytes: int


def pack_part(
    part_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    shard_bytes: int = SHARD_BYTES,
    upload_to: str | None = None,
    keep_shards: bool = True,
    client: Any = None,
    overwrite: bool = False,
) -> PackSummary:
    """Pack an ingest part folder into WebDataset shards plus `index.parquet` and its manifests.

    Args:
        part_dir: Ingest output of one part (`studies.parquet`, `scans.parquet`, volumes).
        out_dir: The pack folder (replaced if it exists).
        shard_bytes: A shard is closed once it holds at least this many bytes (a study never spans shards).
        upload_to: `s3://bucket/prefix`: each shard is uploaded when it closes, the index and manifests at the end.
        keep_shards: With `upload_to`, False deletes each shard here once it is uploaded.
        client: boto3 S3 client (default `hlip.s3.s3_client()`: endpoint and keys from the environment).
        overwrite: Pack into an `upload_to` prefix that already holds a pack. Off by default: its shards would be
            replaced before its index, so a run reading it meanwhile would read bytes its index does not describe.

    Raises:
        FileExistsError: `upload_to` already holds a pack (an `index.parquet`) and `overwrite` is False.
        FileNotFoundError: A manifest table or a scan's volume is missing.
        ValueError: A volume is not a uint8 `[D, H, W]` `.npy` holding the bytes its header declares; `shard_bytes`
            is not positive; `upload_to` is not an `s3://` URI.
    """
    if shard_bytes < 1:
        raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
    part, out = Path(part_dir), Path(out_dir)
    upload = _Uploader(upload_to, client) if upload_to else None
    scans = _table(part, "scans")
    if upload is not None and not overwrite and upload.exists(INDEX):
        raise FileExistsError(
            f"{upload.uri} already holds a pack ({INDEX}): pack each delivery into a new prefix, or overwrite it "
            "when nothing reads it"
        )
    if out.exists():
        shutil.rmtree(out)
    (out / "shards").mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    writer = _ShardWriter(out / "shards", shard_bytes, upload, keep_shards)
    studies = scans.sort_values(["study_key", "scan_key"]).groupby("study_key", sort=False)
    with ProgressReporter(f"pack {part.name}", len(studies), unit="studies") as progress:
        for study_key, group in studies:
            writer.start_study()
            for scan_key, rel in zip(group["scan_key"], group["path"], strict=True):
                data = _volume_bytes(part, str(rel), str(study_key))
                shard, offset, size = writer.add(f"{study_key}.{scan_key}.npy", data)
                rows.append({"path": str(rel), "shard": shard, "offset": offset, "size": size})
            progress.advance(shards=writer.count)
        writer.close()
    pd.DataFrame(rows, columns=["path", "shard", "offset", "size"]).to_parquet(out / INDEX, index=False)
    pd.DataFrame(writer.written, columns=["shard", "bytes", "sha256"]).to_parquet(out / SHARDS, index=False)
    tables = [*(f"{m}.parquet" for m in MANIFESTS), SUMMARY]
    for name in tables:
        if (part / name).is_file():
            shutil.copyfile(part / name, out / name)
    if upload is not None:  # the index last: whoever finds it finds every shard it names
        for name in [n for n in tables if (out / n).is_file()] + [SHARDS, INDEX]:
            upload.put(out / name, name)
    summary = PackSummary(scans["study_key"].nunique(), len(rows), writer.count, writer.total)
    log.info("packed %s: %d studies, %d scans in %d shards", part, summary.studies, summary.scans, summary.shards)
    return summary


def upload_pack(pack_dir: str | os.PathLike[str], uri: str, client: Any = None) -> int:
    """Upload a pack folder to `s3://bucket/prefix` (shards, then index and manifests); returns the number of objects.

    Every shard is checked against `shards.parquet` first (its sha256) and uploaded with that sha256 as object
    metadata, as `pack_part` does, so readers can tell it from another pack's shard of the same name. The client
    defaults to `hlip.s3.s3_client()` (endpoint and keys from the environment).

    Raises:
        FileNotFoundError: No `shards.parquet`, or a shard it lists is missing.
        ValueError: A shard's bytes are not the ones `shards.parquet` records (nothing is uploaded).
    """
    root = Path(pack_dir)
    sha256 = {name: digest for name, (_, digest) in recorded_shards(root).items()}
    for name, want in sha256.items():
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root}: shard {name} is missing")
        got = _sha256(root / name)
        if got != want:
            raise ValueError(f"{root}: shard {name} has sha256 {got[:12]}..., {SHARDS} records {want[:12]}...; re-pack")
    upload = _Uploader(uri, client)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.name == INDEX):  # the index last, as pack_part does
        name = path.relative_to(root).as_posix()
        upload.put(path, name, sha256.get(name))
    return len(files)


def _sha256(path: Path) -> str:
    """A shard's sha256 as `shards.parquet` records it."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _table(part: Path, name: str) -> pd.DataFrame:
    path = part / f"{name}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {part} an ingest output folder?")
    return pd.read_parquet(path)


def _volume_bytes(part: Path, rel: str, study_key: str) -> bytes:
    """A scan's `.npy` bytes, checked to be what training reads."""
    path = part / rel
    if not path.is_file():
        raise FileNotFoundError(f"{part}: volume {rel} of study {study_key} is missing; re-run ingest")
    data = path.read_bytes()
    name = f"{part}: volume {rel} of study {study_key}"
    try:
        volume = bytes_npy(data)
    except ValueError as exc:
        raise ValueError(f"{name} is damaged: {exc}; re-run ingest") from exc
    try:
        require_training_volume(volume, name)
    except ValueError as exc:
        raise ValueError(f"{exc}; re-run ingest") from exc
    return data


class _Uploader:
    """Puts files under one `s3://bucket/prefix`."""

    def __init__(self, uri: str, client: Any) -> None:
        from hlip.data.source import parse_s3_uri

        self.uri = uri.rstrip("/")
        self.bucket, prefix = parse_s3_uri(uri)
        self.prefix = prefix.strip("/")
        if client is None:
            from hlip.s3 import s3_client

            client = s3_client()
        self.client = client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self, name: str) -> bool:
        """Whether the object is there (a missing one is a 404; any other failure is raised, naming the prefix)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:  # botocore's ClientError
            if error_code(exc) in MISSING_CODES:
                return False
            raise OSError(f"cannot check {self.uri} for {name}: {exc}") from exc
        return True

    def put(self, path: Path, name: str, sha256: str | None = None) -> None:
        """Upload `path` as `name`; a shard with its sha256 as object metadata (what readers pin it by)."""
        extra = {"Metadata": {SHA256_METADATA: sha256}} if sha256 else None
        try:
            self.client.upload_file(str(path), self.bucket, self._key(name), ExtraArgs=extra)
        except Exception as exc:  # boto3's S3UploadFailedError / ClientError: name the object, keep the cause
            raise OSError(f"cannot upload {name} to {self.uri}: {exc}") from exc


class _ShardWriter:
    """Writes `shard-NNNNNN.tar` files one after the other with reproducible headers; records data offsets."""

    def __init__(self, folder: Path, shard_bytes: int, upload: _Uploader | None, keep: bool) -> None:
        self.folder, self.shard_bytes = folder, shard_bytes
        self.upload, self.keep = upload, keep
        self.count, self.total = 0, 0
        self.tar: tarfile.TarFile | None = None
        self.name = ""
        self.written: list[dict[str, Any]] = []  # per shard: name, bytes, sha256 (the pack's `shards.parquet`)

    def start_study(self) -> None:
        """Open the next shard if the current one is full (studies never span shards)."""
        if self.tar is not None and self.tar.offset >= self.shard_bytes:
            self._finish()
        if self.tar is None:
            self.name = f"shards/shard-{self.count:06d}.tar"
            # open across add() calls, closed by _finish(): a with-block cannot span them
            self.tar = tarfile.open(self.folder.parent / self.name, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self.count += 1

    def add(self, member: str, data: bytes) -> tuple[str, int, int]:
        """Append one member: (shard path relative to the pack, offset of its data, its size)."""
        assert self.tar is not None, "start_study() first"
        info = tarfile.TarInfo(member)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self.tar.addfile(info, io.BytesIO(data))
        padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        return self.name, self.tar.offset - padded, len(data)

    def close(self) -> None:
        if self.tar is not None:
            self._finish()

    def _finish(self) -> None:
        assert self.tar is not None
        self.tar.close()
        path = self.folder.parent / self.name
        digest = _sha256(path)
        size = path.stat().st_size
        self.written.append({"shard": self.name, "bytes": size, "sha256": digest})
        self.total += size
        self.tar = None
        if self.upload is not None:
            self.upload.put(path, self.name, digest)
            if not self.keep:
                path.unlink()
