"""The study contract: everything that turns a study into a model's input, written with every exported model.

A model is only as good as the agreement between what it was trained on and what it is shown later. The contract
holds both halves of that agreement in one object:

- `preprocess`: the voxel grid, spacing, size mode, MR percentiles, CT windows, orientation and interpolation
  (`PreprocessConfig`, what ingest applies to every scan);
- `scans`: the scan policy (`ScanPolicy`: which kinds, how many, tiling), applied by `choose_scans`, the one
  selection rule of training, evaluation and serving.

(The input normalisation, `vision.input_norm`, lives in the model's architecture config and so travels with the
weights.) Pre-training writes the contract into the exported model's metadata (`metadata["contract"]`);
evaluation and serving read it from there, never from `params.yaml` or their own defaults, and a disagreement
between the contract and the data they are given is an error naming both values (`ContractError`).

```python
contract = StudyContract.of_model("outputs/pretrain/model")
order = contract.select(kinds, planes, scan_keys)   # positions of the scans the model sees, in stacking order
```
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, from_dict, to_dict
from hlip.data.preprocess import PreprocessConfig
from hlip.data.sampling import ScanPolicy, choose_scans

METADATA_KEY = "contract"


class ContractError(ValueError):
    """A study contract disagrees with the data or settings it meets (the message names both values)."""


class PartContractError(ContractError):
    """An ingested part was preprocessed otherwise than a model's contract says: re-ingest it for the model
    (`hlip ingest --contract-of MODEL`)."""


@dataclasses.dataclass(frozen=True)
class StudyContract:
    """How a study becomes a model's input.

    Attributes:
        preprocess: Scan preprocessing (grid, spacing, windows or percentiles, orientation, interpolation).
        scans: Scan policy (kinds, order, how many, tiling).
    """

    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    scans: ScanPolicy = dataclasses.field(default_factory=ScanPolicy)

    def select(self, kinds: Sequence[str], planes: Sequence[str], keys: Sequence[str]) -> list[int]:
        """Positions of the scans the model sees (evaluation and serving: deterministic), in stacking order.

        Raises:
            ValueError: No scan of an allowed kind.
        """
        return choose_scans(kinds, planes, keys, self.scans, None)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML safe)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "study contract") -> StudyContract:
        """Build from `to_dict` output, rejecting unknown keys."""
        return from_dict(cls, data, where=where)

    @classmethod
    def of_model(cls, model_dir: str | Path) -> StudyContract:
        """The contract an exported model folder carries.

        Raises:
            ContractError: The export has no contract (it predates contracts or was written by hand).
        """
        meta = _export_metadata(Path(model_dir))
        if METADATA_KEY not in meta:
            raise ContractError(
                f"{model_dir}: the exported model carries no study contract (metadata[{METADATA_KEY!r}]); "
                "re-export it with `hlip.models.export.save_model(..., metadata={'contract': ...})`"
            )
        return cls.from_dict(meta[METADATA_KEY], where=f"{model_dir}: metadata.{METADATA_KEY}")

    def require_preprocess(self, other: PreprocessConfig | Mapping[str, Any], where: str) -> None:
        """Raise when `other` (e.g. what an ingest part or `params.yaml` says) preprocesses differently.

        Raises:
            ContractError: Naming every differing setting with both values.
        """
        given = other if isinstance(other, PreprocessConfig) else _preprocess(other, where)
        ours, theirs = to_dict(self.preprocess), to_dict(given)
        differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        if differ:
            detail = "; ".join(f"{k}: model {a!r} vs {where} {b!r}" for k, (a, b) in sorted(differ.items()))
            raise ContractError(f"the model's study contract and {where} preprocess differently: {detail}")

    def require_scans(self, other: ScanPolicy | Mapping[str, Any], where: str) -> None:
        """Raise when the scan policy `other` differs from the contract's (naming both values)."""
        given = other if isinstance(other, ScanPolicy) else from_dict(ScanPolicy, other, where=where)
        if given != self.scans:
            raise ContractError(
                f"the model's study contract and {where} choose scans differently: "
                f"model {to_dict(self.scans)} vs {where} {to_dict(given)}"
            )


def _preprocess(block: Mapping[str, Any], where: str) -> PreprocessConfig:
    try:
        return from_dict(PreprocessConfig, block, where=where)
    except ConfigError as exc:
        raise ContractError(str(exc)) from exc


def _export_metadata(model_dir: Path) -> dict[str, Any]:
    # read without importing torch (hlip.models.export): serving and evaluation set-up stay light
    config = model_dir / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{model_dir} is not an exported HLIP model: config.json is missing")
    return dict(json.loads(config.read_text()).get("metadata") or {})
