"""The fast variant of the ingest reproducibility check: preprocessing (orientation, intensity scaling, MONAI
resampling and crop/pad, the float work of ingest) gives the same bytes under one and two torch threads, for an MR
volume and for every CT window. The slow test (tests/integration/lineage) ingests a whole part."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hlip.data.preprocess import PreprocessConfig, preprocess
from hlip.data.volume import Volume


def _volume(modality: str) -> Volume:
    rng = np.random.default_rng(0)
    array = rng.normal(40.0 if modality == "CT" else 300.0, 60.0, size=(23, 57, 61)).astype(np.float32)
    affine = np.diag([0.9, 0.8, 2.5, 1.0])  # anisotropic: the resampling interpolates on every axis
    affine[:3, 3] = (-20.0, 13.0, 7.5)
    return Volume(array=array, affine=affine)


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_preprocess_bytes_do_not_depend_on_torch_threads(modality: str) -> None:
    config = PreprocessConfig(size=(16, 48, 48), spacing=(3.0, 1.7, 1.3))
    before = torch.get_num_threads()
    outputs = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outputs[threads] = preprocess(_volume(modality), modality, "axial", config)
    finally:
        torch.set_num_threads(before)
    assert len(outputs[1]) == len(outputs[2]) >= 1
    for a, b in zip(outputs[1], outputs[2], strict=True):
        assert a.window == b.window
        assert a.array.tobytes() == b.array.tobytes(), f"{modality} {a.window or 'scan'}: voxels differ"
        assert a.affine.tobytes() == b.affine.tobytes()
        assert len(np.unique(a.array)) > 10  # real content, not a constant that would match trivially
