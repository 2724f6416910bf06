"""Where raw studies come from: a local folder or an S3 prefix, listed and read the same way.

A `Source` lists every file under its root (relative POSIX paths, size, and a version stamp that changes when the
content changes) and reads bytes. Sources are picklable so a study's work can run in another process or on a Dask
worker: the S3 client is created lazily in each process. S3 settings (endpoint, credentials, region, profile) come
from the environment, never from params or git.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hlip.s3 import DATA_ENDPOINT_ENV, endpoint_of, s3_client


@dataclass(frozen=True)
class SourceFile:
    """One raw file.

    Attributes:
        path: Path relative to the source root, POSIX separators.
        size: Size in bytes.
        version: Changes whenever the content may have changed (mtime in ns locally, the ETag on S3).
        problem: Empty for a readable regular file; else the quarantine reason code of an entry the listing found
            but cannot ingest (see `ENTRY_PROBLEMS`), so that it is accounted for instead of silently missing.
        detail: What is wrong with such an entry, for a human (never the raw name).
    """

    path: str
    size: int
    version: str
    problem: str = ""
    detail: str = ""


# Reason codes of entries the listing finds but cannot ingest (the same strings as `quarantine.Reason`).
UNREADABLE = "unreadable"
BROKEN_LINK = "broken_link"
LINK_LOOP = "link_loop"
NOT_REGULAR_FILE = "not_regular_file"
INVALID_NAME = "invalid_name"
ENTRY_PROBLEMS = (UNREADABLE, BROKEN_LINK, LINK_LOOP, NOT_REGULAR_FILE, INVALID_NAME)
CHUNK_BYTES = 1024 * 1024


class Source(ABC):
    """A read-only tree of raw files."""

    uri: str

    @abstractmethod
    def list_files(self) -> Iterator[SourceFile]:
        """Yield every readable regular file under the root, in a stable (sorted) order."""

    def list_entries(self) -> Iterator[SourceFile]:
        """Yield every entry under the root: the files of `list_files`, and entries that cannot be ingested (a
        folder or file that cannot be read, a broken or looping link, a FIFO/device/socket, a name that is not
        valid UTF-8) with their `problem` set. Ingest lists with this, so nothing under the root goes unaccounted.
        """
        return self.list_files()

    @abstractmethod
    def read_bytes(self, path: str, length: int | None = None) -> bytes:
        """Read a file, or only its first `length` bytes."""

    def local_path(self, path: str) -> Path | None:
        """The file's local path when it has one (lets pydicom seek instead of downloading), else None."""
        return None

    def iter_bytes(self, path: str, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The file's bytes in chunks of at most `chunk` (hashing a 1 GiB file never holds 1 GiB)."""
        with self.open(path) as fh:
            while block := fh.read(chunk):
                yield block

    def open(self, path: str) -> BinaryIO:
        """A binary file object over the whole file."""
        local = self.local_path(path)
        return local.open("rb") if local is not None else io.BytesIO(self.read_bytes(path))


class LocalSource(Source):
    """A folder on a local or mounted file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"source folder not found: {self.root}")
        self.uri = str(self.root)

    def list_files(self) -> Iterator[SourceFile]:
        """Walk the tree without following symbolic links (a link loop must not hang the run)."""
        return (f for f in self.list_entries() if not f.problem)

    def list_entries(self) -> Iterator[SourceFile]:
        """Walk the tree (links to files are read, links to folders are not followed) and classify every entry.

        The order is `os.walk`'s, top-down with sorted names: each folder's links to folders, then its files, then
        its sub-folders in turn. Paths are handled as strings (pathlib's parsing was two thirds of a listing's time).
        """
        root = str(self.root)
        stack = [root]
        while stack:
            top = stack.pop()
            try:
                with os.scandir(top) as it:
                    children = list(it)
            except OSError as exc:
                if top != root:
                    yield self._problem(top, UNREADABLE, f"folder cannot be listed ({type(exc).__name__})")
                continue
            folders: list[str] = []
            files: list[str] = []
            for child in children:
                try:
                    is_dir = child.is_dir()
                except OSError:
                    is_dir = False
                (folders if is_dir else files).append(child.name)
            folders.sort()
            descend: list[str] = []
            for name in folders:
                path = os.path.join(top, name)
                if os.path.islink(path):  # not descended into: account for the link itself
                    yield self._problem(path, NOT_REGULAR_FILE, "link to a folder (not followed: links can loop)")
                else:
                    descend.append(path)
            for name in sorted(files):
                yield self._classify(os.path.join(top, name))
            stack.extend(reversed(descend))

    def _classify(self, full: str) -> SourceFile:
        try:
            st = os.stat(full)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return self._problem(full, LINK_LOOP, "symbolic link loop")
            if os.path.islink(full) and exc.errno == errno.ENOENT:
                return self._problem(full, BROKEN_LINK, "symbolic link to nothing")
            return self._problem(full, UNREADABLE, f"cannot stat the entry ({type(exc).__name__})")
        if not stat.S_ISREG(st.st_mode):
            kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
            return self._problem(full, NOT_REGULAR_FILE, f"{kind}, not a regular file")
        rel = self._relative(full)
        if not _valid_utf8(rel):
            return SourceFile(rel, st.st_size, str(st.st_mtime_ns), INVALID_NAME, "name is not valid UTF-8")
        if not os.access(full, os.R_OK):
            return SourceFile(rel, st.st_size, str(st.st_mtime_ns), UNREADABLE, "no read permission")
        return SourceFile(rel, st.st_size, str(st.st_mtime_ns))

    def _relative(self, full: str) -> str:
        root = str(self.root)
        rel = full[len(root) + (not root.endswith(os.sep)) :]  # a root such as "/" already ends with the separator
        return rel if os.sep == "/" else rel.replace(os.sep, "/")

    def _problem(self, full: str, problem: str, detail: str) -> SourceFile:
        return SourceFile(self._relative(full), 0, "", problem, detail)

    def read_bytes(self, path: str, length: int | None = None) -> bytes:
        """Read from the file (never opened for writing: raw data is read-only to us)."""
        with (self.root / path).open("rb") as fh:
            return fh.read() if length is None else fh.read(length)

    def local_path(self, path: str) -> Path | None:
        """The absolute path of `path`."""
        return self.root / path

    def __repr__(self) -> str:
        return f"LocalSource({self.uri!r})"


class S3Source(Source):
    """An `s3://bucket/prefix` on AWS S3 or any S3-compatible store (MinIO, SeaweedFS).

    Path-style addressing and an explicit region are used because S3-compatible servers on a private endpoint
    rarely resolve virtual-host bucket names.
    """

    def __init__(self, uri: str) -> None:
        bucket, prefix = parse_s3_uri(uri)
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # boto3 clients do not pickle; each process builds its own
        return state

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use in this process."""
        if self._client is None:
            self._client = s3_client()
        return self._client

    def list_files(self) -> Iterator[SourceFile]:
        """List every object under the prefix (sorted by key, as S3 returns them).

        Raises:
            SourceError: The endpoint is unreachable, the credentials are refused or the bucket does not exist.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors(self.uri):
            pages = list(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix))
        for page in pages:
            for obj in page.get("Contents", []):
                key: str = obj["Key"]
                if key.endswith("/"):
                    continue  # folder marker objects are not files
                yield SourceFile(key[len(self.prefix) :], int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))

    def read_bytes(self, path: str, length: int | None = None) -> bytes:
        """GET the object, or a byte range of its head."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + path}
        if length is not None:
            kwargs["Range"] = f"bytes=0-{max(length - 1, 0)}"
        body = self.client.get_object(**kwargs)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def iter_bytes(self, path: str, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Stream the object's body in chunks."""
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + path)["Body"]
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()

    def __repr__(self) -> str:
        return f"S3Source({self.uri!r})"


def _valid_utf8(name: str) -> bool:
    """False for a name that came from the file system with undecodable bytes (held as surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_name(name: str) -> str:
    """A printable, UTF-8-encodable form of a path (undecodable bytes as backslash escapes), for messages."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into bucket and prefix."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, prefix


def open_source(uri: str | os.PathLike[str]) -> Source:
    """Open a local folder or an `s3://bucket/prefix` as a `Source`."""
    text = os.fspath(uri)
    return S3Source(text) if text.startswith("s3://") else LocalSource(text)


def read_uri(uri: str | os.PathLike[str]) -> bytes:
    """Read one whole file given as a local path or an `s3://bucket/key` URI (used for the reports CSV)."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        bucket, key = parse_s3_uri(text)
        with s3_errors(text):
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    return Path(text).expanduser().read_bytes()


class SourceError(RuntimeError):
    """The source cannot be read at all (unreachable endpoint, refused credentials, missing bucket or object).

    The message names what is wrong and never holds a secret.
    """


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn botocore failures on `uri` into one `SourceError` that says what is wrong."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = endpoint_of(os.environ) or "AWS S3"
    try:
        yield
    except EndpointConnectionError as exc:
        raise SourceError(f"cannot reach the S3 endpoint {endpoint} for {uri}: check {DATA_ENDPOINT_ENV[0]}") from exc
    except NoCredentialsError as exc:
        raise SourceError(
            f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ) from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        if code in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"}:
            who = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or "(default)"
            raise SourceError(f"S3 at {endpoint} refused access key {who} for {uri}: {code}") from exc
        if code in {"NoSuchBucket", "NoSuchKey", "404"}:
            raise SourceError(f"{uri} does not exist at {endpoint} ({code})") from exc
        raise SourceError(f"S3 error on {uri} at {endpoint}: {code}") from exc
