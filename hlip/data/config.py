"""The configuration of the ingest stage (the `ingest:` block of `params.yaml`).

Built with `hlip.config.from_dict`, which rejects unknown keys at every level: a typo in `params.yaml` fails
loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hlip.config import from_dict, to_dict
from hlip.data.preprocess import PreprocessConfig
from hlip.data.series import SeriesConfig
from hlip.data.volume import LimitsConfig, VolumeConfig
from hlip.lineage.closure import closure_digest

# The module whose import closure decides what ingest writes. The stage's own closure (flows.ingest) adds the MLflow
# recording, which changes no output: hashing it would re-ingest the whole corpus after a tracking refactor.
INGEST_ENTRY = "hlip.data.ingest"


@dataclasses.dataclass(frozen=True)
class DeidConfig:
    """De-identification settings (`ingest.deid` in params.yaml); the secret itself never lives here.

    Attributes:
        key_env: Environment variable holding the HMAC secret.
        hash_length: Hex characters kept of each keyed hash.
        hash_paths: Write keyed hashes instead of relative source paths in the tables, because folder and file
            names of real exports often carry patient names or IDs (`hlip locate` maps a hash back to its file).
        export_header: Keep a de-identified header (JSON) per scan in `scans.parquet`.
        identity_conflict: What to do with a study whose files disagree on PatientID: ``quarantine`` it (every
            file, reason `identity_conflict`) or ``flag`` it (a study-level entry; the study is still ingested).
        allow_burned_in: Ingest series whose header says BurnedInAnnotation = YES (text burned into the pixels
            can name the patient); by default they are quarantined as `burned_in_annotation`.
        burned_in_rules: Also quarantine series flagged by the `deid` package's header rules (from the RSNA CTP
            filters). Off by default: the rules flag every DERIVED/SECONDARY CT or MR image (ADC maps, MPRs).
    """

    key_env: str = "HLIP_DEID_KEY"
    hash_length: int = 20
    hash_paths: bool = True
    export_header: bool = True
    identity_conflict: str = "quarantine"
    allow_burned_in: bool = False
    burned_in_rules: bool = False

    def __post_init__(self) -> None:
        if self.identity_conflict not in ("quarantine", "flag"):
            raise ValueError(
                f"ingest.deid.identity_conflict must be quarantine or flag, not {self.identity_conflict!r}"
            )


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """Everything the ingest stage reads from the `ingest:` block of params.yaml.

    Attributes:
        workers: Processes in the pool (1 runs everything in this process).
        header_chunk: Files per header-pass task.
        dask_scheduler: None for a local process pool; ``local`` for a dask LocalCluster of `workers` processes;
            or the address of a running dask scheduler (``tcp://host:8786``) to fan out over a cluster.
        series: Classification settings.
        volume: Stack checks.
        preprocess: Preprocessing settings.
        deid: De-identification settings.
        limits: Physical plausibility limits on rescale and spacing values.
    """

    workers: int = 2
    header_chunk: int = 256
    dask_scheduler: str | None = None
    series: SeriesConfig = dataclasses.field(default_factory=SeriesConfig)
    volume: VolumeConfig = dataclasses.field(default_factory=VolumeConfig)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    deid: DeidConfig = dataclasses.field(default_factory=DeidConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.header_chunk < 1:
            raise ValueError("workers and header_chunk must be >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> IngestConfig:
        """Build from the `ingest:` block, rejecting unknown keys at every level."""
        return from_dict(cls, data, where="params.yaml:ingest")

    def fingerprint(self) -> str:
        """A digest of everything that changes outputs: these settings (not `workers`) and the ingest code.

        The code is the import closure of the ingest library (`INGEST_ENTRY`, with the package data it reads),
        computed by the same function that checks `dvc.yaml`'s ingest dependencies. A change of either re-ingests
        every study; incremental reruns only skip work that would come out the same.
        """
        data = to_dict(self)
        for how_not_what in ("workers", "header_chunk", "dask_scheduler"):
            data.pop(how_not_what)
        text = json.dumps(data, sort_keys=True) + closure_digest(INGEST_ENTRY)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_ingest_block(block: Mapping[str, Any]) -> tuple[dict[str, dict[str, str]], str, IngestConfig]:
    """Split the `ingest:` block of params.yaml into the stage's inputs and the library settings.

    Returns:
        `parts` (part name -> ``{"dicom": ..., "reports": ...}``; empty when absent), the output folder, and the
        `IngestConfig` built from every other key (unknown keys rejected).
    """
    rest = dict(block)
    parts = rest.pop("parts", None) or {}
    out = str(rest.pop("out", "outputs/ingest"))
    if not isinstance(parts, Mapping) or any(not isinstance(p, Mapping) or "dicom" not in p for p in parts.values()):
        raise ValueError("params.yaml:ingest.parts must map part names to {dicom: ..., reports: ...}")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in parts.items()}, out, IngestConfig.from_dict(rest)
