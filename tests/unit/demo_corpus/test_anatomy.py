"""`Anatomy.sample`: the nearest template voxel inside the template, air anywhere else (NaN and far-off points too)."""

from __future__ import annotations

import numpy as np

from demo_corpus.anatomy import CHANNELS, Anatomy

AIR = {"gm": 0.0, "wm": 0.0, "brain": 0.0, "dout": np.float32(255) * np.float32(0.1), "vessel": 0.0}


def _anatomy(rng: np.random.Generator) -> Anatomy:
    anatomy = object.__new__(Anatomy)  # the packed channels only: no template to build
    anatomy.shape = (3, 4, 5)
    anatomy.origin = np.array([-10.0, -20.0, -30.0])
    anatomy.resolution = 2.0
    packed = rng.integers(0, 256, size=(3 * 4 * 5, len(CHANNELS)), dtype=np.uint8)
    anatomy._flat = np.concatenate([packed, [[0, 0, 0, 255, 0]]]).astype(np.uint8)
    return anatomy


def test_points_take_their_nearest_voxel_and_points_outside_are_air() -> None:
    rng = np.random.default_rng(3)
    anatomy = _anatomy(rng)
    origin = anatomy.origin.astype(np.float32)
    voxels = [(0, 0, 0), (2, 3, 4), (1, 2, 3), (2, 0, 4)]
    offsets = rng.uniform(-0.45, 0.45, size=(len(voxels), 3)).astype(np.float32) * 2.0  # within half a voxel
    inside = np.asarray(voxels, dtype=np.float32) * 2.0 + origin + offsets
    outside = np.array(
        [
            origin + np.float32(2.0) * np.array([-0.7, 0.0, 0.0], dtype=np.float32),  # truncates to 0, yet outside
            origin + np.float32(2.0) * np.array([0.0, 3.6, 0.0], dtype=np.float32),  # past the last row
            [np.nan, 0.0, 0.0],
            [1e9, 0.0, 0.0],
            [-1e12, 5.0, np.inf],
        ],
        dtype=np.float32,
    )
    points = np.concatenate([inside, outside])[None]  # a leading axis, as a slice grid has
    sampled = anatomy.sample(points)
    assert set(sampled) == set(CHANNELS)
    for c, name in enumerate(CHANNELS):
        values = sampled[name]
        assert values.dtype == np.float32
        assert values.shape == (1, len(points[0]))
        scale = np.float32(0.1) if name == "dout" else np.float32(1.0 / 255.0)
        for n, (i, j, k) in enumerate(voxels):
            stored = anatomy._flat[(i * 4 + j) * 5 + k, c]
            assert values[0, n] == np.float32(stored) * scale, (name, n)
        np.testing.assert_array_equal(values[0, len(voxels) :], np.float32(AIR[name]), err_msg=name)
