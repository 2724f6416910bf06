"""Upstream HLIP's registered vision models, the config of ours that each one is, and what upstream feeds it.

Facts read from github.com/Zch0414/hlip (`src/hlip/visual_encoder.py`, `src/hlip/model_configs/*.json`, its data
loaders and zero-shot scripts); docs/upstream.md shows the same table. Every upstream name maps to one of our
registered configs (`hlip/models/configs/`), which sets the same architecture and `input_norm: imagenet_gray`.
The study contract (`contract`) is what upstream's loaders do to a study before the model sees it, as plain
`hlip.data.contract.StudyContract.to_dict()` data: the preprocessing (`PreprocessConfig` fields) and the scan policy
(`ScanPolicy` fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Brain MRI (BrainMRI220K, Pub-Brain-5, RSNA, CQ500 head CT): each scan resized to 48 x 224 x 224, intensities
# clipped at the 0.5 / 99.5 percentiles; training tiles a study's scans to a fixed count (8), evaluation uses all.
BRAIN_CONTRACT: dict[str, Any] = {
    "preprocess": {"size": [48, 224, 224], "spacing": None, "size_mode": "resize", "mr_percentiles": [0.5, 99.5]},
    "scans": {"mode": "fixed_n", "max_scans": 8, "kinds": []},
}
# Chest CT (CT-RATE, RAD-ChestCT): one scan per study at 3 x 1 x 1 mm, HU window [-1150, 350] (level -400,
# width 1500) scaled to [0, 1], centre-cropped or padded to 112 x 336 x 336.
CHEST_CONTRACT: dict[str, Any] = {
    "preprocess": {
        "size": [112, 336, 336],
        "spacing": [3.0, 1.0, 1.0],
        "size_mode": "crop_pad",
        "ct_windows": {"lung": [-400.0, 1500.0]},
    },
    "scans": {"mode": "max_n", "max_scans": 1, "kinds": []},
}


@dataclass(frozen=True)
class UpstreamModel:
    """One upstream registered vision model.

    Attributes:
        name: Upstream's timm registry name (its open_clip config is `clip_<name>`).
        ours: Our registered config with the same architecture.
        release: `v1` (2025 paper, weights on a shared drive) or `2026` (open_clip folders on the HF hub).
        contract: Upstream's preprocessing and scan handling (see the module docstring).
        text: Upstream's text tower for it (the BERT whose layout the checkpoint's `text.transformer.*` has).
    """

    name: str
    ours: str
    release: str
    contract: dict[str, Any] = field(default_factory=lambda: dict(BRAIN_CONTRACT))
    text: str = "BiomedBERT (context 256)"


UPSTREAM_MODELS: tuple[UpstreamModel, ...] = (
    UpstreamModel("vit_base_multiscan_h2_token1176", "hlip-vit-b-brainmri-scan-study", "v1"),
    UpstreamModel("vit_base_multiscan_h2_token588", "hlip-vit-b16-brainmri-scan-study", "v1"),
    UpstreamModel("vit_base_multiscan_h3_token1176", "hlip-vit-b-brainmri-slice-scan-study", "v1"),
    UpstreamModel(
        "vit_base_singlescan_h2_token2744",
        "hlip-vit-b-chestct-slice-scan",
        "v1",
        dict(CHEST_CONTRACT),
        "CXR-BERT (context 512)",
    ),
    UpstreamModel("vit_base_scan_study_dualdinotxt1568", "hlip-vit-b-brainmri-scan-study-dinotxt", "2026"),
    UpstreamModel("vit_base_slice_scan_study_dualdinotxt1568", "hlip-vit-b-brainmri-slice-scan-study-dinotxt", "2026"),
    UpstreamModel("vit_large_scan_study_dualdinotxt1568", "hlip-vit-l-brainmri-scan-study-dinotxt", "2026"),
    UpstreamModel("vit_large_slice_scan_study_dualdinotxt1568", "hlip-vit-l-brainmri-slice-scan-study-dinotxt", "2026"),
    UpstreamModel(
        "vit_base_slice_scan_dualdinotxt2744",
        "hlip-vit-b-chestct-slice-scan-dinotxt",
        "2026",
        dict(CHEST_CONTRACT),
        "CXR-BERT (context 512)",
    ),
)


def find_upstream(name: str) -> UpstreamModel | None:
    """The upstream model named `name`: its timm name, its open_clip name (`clip_<name>`) or our config name."""
    bare = name.removeprefix("clip_")
    return next((m for m in UPSTREAM_MODELS if bare == m.name or name == m.ours), None)


def resolve_model_name(name: str) -> str:
    """Our config name for `name` (an upstream timm / open_clip name, or already ours: returned unchanged)."""
    found = find_upstream(name)
    return found.ours if found is not None else name
