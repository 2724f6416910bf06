"""A fingerprint of a raw source's listing: changes when a file is added, removed, resized or rewritten.

Used by the `watch` flow to trigger ingestion when new data arrives, without reading any file's content: it
hashes each file's relative path, size and version stamp (mtime locally, ETag on S3) from `Source.list_files`.
"""

from __future__ import annotations

import hashlib
import os

from hlip.data.source import open_source


def source_fingerprint(uri: str | os.PathLike[str]) -> tuple[str, int]:
    """``(sha256 of the listing, number of files)`` of a local folder or file, or an ``s3://`` prefix.

    A missing local path gives ``("", 0)``: no data yet is a state like any other.
    """
    text = os.fspath(uri)
    if not text.startswith("s3://"):
        if os.path.isfile(text):
            st = os.stat(text)
            return hashlib.sha256(f"{st.st_size}\t{st.st_mtime_ns}\n".encode()).hexdigest(), 1
        if not os.path.isdir(text):
            return "", 0
    digest = hashlib.sha256()
    count = 0
    try:
        for entry in open_source(text).list_files():
            digest.update(f"{entry.path}\t{entry.size}\t{entry.version}\n".encode())
            count += 1
    except FileNotFoundError:
        return "", 0
    return (digest.hexdigest() if count else ""), count
