"""Strict construction of frozen config dataclasses from plain mappings (the blocks of `params.yaml`).

Every config in `hlip.data` is a frozen dataclass. Building one from a mapping goes through `from_mapping`, which
rejects unknown keys (a typo in `params.yaml` must fail loudly, not be ignored), turns YAML lists into tuples and
builds nested config dataclasses from nested mappings.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from hlip.data.preprocess import PreprocessConfig
from hlip.data.series import SeriesConfig
from hlip.data.volume import VolumeConfig

T = TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """Build the config dataclass `cls` from `data`, rejecting unknown keys.

    Args:
        cls: A dataclass type whose fields all have defaults.
        data: The mapping (for example a block of `params.yaml`); None or empty gives the defaults.

    Returns:
        The config instance.

    Raises:
        ValueError: If `data` has a key that is not a field of `cls`, or a value has the wrong shape.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{cls.__name__}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def to_mapping(config: Any) -> dict[str, Any]:
    """Turn a config dataclass back into plain, YAML/JSON-friendly values (tuples become lists)."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_mapping(hint, value)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, where) if len(non_none) == 1 else value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=False)) if args else tuple(value)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, where) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class DeidConfig:
    """De-identification settings (`ingest.deid` in params.yaml); the secret itself never lives here.

    Attributes:
        key_env: Environment variable holding the HMAC secret.
        hash_length: Hex characters kept of each keyed hash.
        hash_paths: Write keyed hashes instead of relative source paths in the tables (for exports whose folder
            or file names carry patient names or IDs).
        export_header: Keep a de-identified header (JSON) per scan in `scans.parquet`.
    """

    key_env: str = "HLIP_DEID_KEY"
    hash_length: int = 20
    hash_paths: bool = False
    export_header: bool = True


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """Everything the ingest stage reads from the `ingest:` block of params.yaml.

    Attributes:
        workers: Processes in the pool (1 runs everything in this process).
        header_chunk: Files per header-pass task.
        series: Classification settings.
        volume: Stack checks.
        preprocess: Preprocessing settings.
        deid: De-identification settings.
    """

    workers: int = 2
    header_chunk: int = 256
    series: SeriesConfig = dataclasses.field(default_factory=SeriesConfig)
    volume: VolumeConfig = dataclasses.field(default_factory=VolumeConfig)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    deid: DeidConfig = dataclasses.field(default_factory=DeidConfig)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.header_chunk < 1:
            raise ValueError("workers and header_chunk must be >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> IngestConfig:
        """Build from the `ingest:` block, rejecting unknown keys at every level."""
        return from_mapping(cls, data)

    def fingerprint(self) -> str:
        """A digest of everything that changes outputs (not `workers`): a change re-ingests every study."""
        import hashlib
        import json

        data = to_mapping(self)
        data.pop("workers")
        data.pop("header_chunk")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
