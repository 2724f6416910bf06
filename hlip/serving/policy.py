"""The serving policy of a deployment: which study roots a request may name, and how big a study may be.

Set at deployment, never by a request. Roots come from ``$HLIP_SERVE_ROOTS`` (comma-separated local folders and
`s3://bucket/prefix` URIs) and from the model config's ``serving.roots`` (given when the model is loaded, e.g.
`mlflow.pyfunc.load_model(uri, model_config={"serving": {"roots": [...]}})`): both are allowed; with neither, a
request may not name any path (studies must be sent as bytes). Each limit comes from its environment variable,
else the model config's ``serving`` block, else the default here.

```bash
HLIP_SERVE_ROOTS=/pacs/exports,s3://hospital-studies/incoming HLIP_SERVE_MAX_UPLOAD_BYTES=268435456 \
  mlflow models serve -m models:/hlip-demo@champion --env-manager local
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import from_dict

ROOTS_ENV = "HLIP_SERVE_ROOTS"
WORK_DIR_ENV = "HLIP_SERVE_WORK_DIR"
LIMIT_ENV_PREFIX = "HLIP_SERVE_"  # + the limit's name in upper case, e.g. HLIP_SERVE_MAX_FILES


class RequestError(ValueError):
    """A request refused before any work: `code` is a stable reason, the message says why for a human and never
    names a server path.

    Attributes:
        code: One of `path_not_allowed`, `bad_request`, `upload_too_large`, `bad_archive`, `unsafe_archive`,
            `too_many_files`, `too_large`, `too_many_voxels`, `not_dicom`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class ServingLimits:
    """Bounds on one study; a study over any of them is refused, not processed.

    Attributes:
        max_upload_bytes: Decoded size of an uploaded archive (the base64 text may be a third longer).
        max_uncompressed_bytes: Sum of the sizes of the files of a study (an archive's members once extracted, or
            the files under an allowed folder or prefix): the zip-bomb guard.
        max_files: Files per study (archive members, or files under the folder or prefix).
        max_voxels: Decoded voxels per study: rows x columns x frames summed over its DICOM headers, before any
            pixel is decoded.
    """

    max_upload_bytes: int = 256 * 2**20
    max_uncompressed_bytes: int = 2 * 2**30
    max_files: int = 5000
    max_voxels: int = 1_000_000_000

    def __post_init__(self) -> None:
        bad = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) <= 0]
        if bad:
            raise ValueError(f"serving limits must be positive: {bad}")


@dataclass(frozen=True)
class ServingPolicy:
    """Allow-list and limits of one deployment.

    Attributes:
        roots: Allowed study roots: absolute local folders (resolved, links followed) and `s3://bucket/prefix`
            URIs (normalised with a trailing slash). Empty: no path is allowed.
        limits: Study size bounds.
        work_dir: Where private per-request work folders are made (None: the system's temporary folder).
    """

    roots: tuple[str, ...] = ()
    limits: ServingLimits = ServingLimits()
    work_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(normalise_root(r) for r in self.roots))

    @property
    def local_roots(self) -> list[Path]:
        """The allowed local folders."""
        return [Path(r) for r in self.roots if not r.startswith("s3://")]

    @property
    def s3_roots(self) -> list[str]:
        """The allowed S3 prefixes (`s3://bucket/prefix/`)."""
        return [r for r in self.roots if r.startswith("s3://")]

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> ServingPolicy:
        """The policy of a deployment: roots from both the environment and the model config's `serving` block;
        each limit from the environment, else the block, else the default.

        Args:
            config: The model config's `serving` block (`roots`, `work_dir` and the limits by name).
            env: The environment (defaults to `os.environ`).

        Raises:
            ValueError: An unknown key, a non-positive or non-integer limit, or a relative or malformed root.
        """
        env = os.environ if env is None else env
        block = dict(config or {})
        roots = block.pop("roots", None) or []
        work_dir = env.get(WORK_DIR_ENV) or block.pop("work_dir", None)
        block.pop("work_dir", None)
        if isinstance(roots, str):
            roots = [roots]
        roots = [*roots, *(r.strip() for r in env.get(ROOTS_ENV, "").split(",") if r.strip())]
        limits = dict(block)
        for f in dataclasses.fields(ServingLimits):
            raw = env.get(LIMIT_ENV_PREFIX + f.name.upper())
            if raw is not None:
                try:
                    limits[f.name] = int(raw)
                except ValueError as exc:
                    raise ValueError(f"{LIMIT_ENV_PREFIX + f.name.upper()} must be an integer") from exc
        return cls(tuple(str(r) for r in roots), from_dict(ServingLimits, limits, where="serving limits"), work_dir)


def normalise_root(root: str) -> str:
    """An allowed root in canonical form: `s3://bucket/prefix/`, or an absolute resolved local folder.

    Raises:
        ValueError: A relative local root (it would depend on the server's working directory), an S3 root
            without a bucket, or one with `.`/`..` segments.
    """
    if root.startswith("s3://"):
        bucket, _, prefix = root[len("s3://") :].partition("/")
        parts = [p for p in prefix.split("/") if p]
        if not bucket or any(p in (".", "..") for p in parts):
            raise ValueError(f"serving root {root!r}: expected s3://bucket/prefix without '.' or '..' segments")
        return f"s3://{bucket}/" + "".join(p + "/" for p in parts)
    if "://" in root:
        raise ValueError(f"serving root {root!r}: only local folders and s3:// prefixes are supported")
    path = Path(root).expanduser()
    if not path.is_absolute():
        raise ValueError(f"serving root {root!r} must be an absolute folder")
    return str(path.resolve())  # links in the root itself are followed once, here, at deployment
