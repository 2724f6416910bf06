"""Preprocessing per scan: `hlip.data.preprocess` (numpy) beside the same steps written with MONAI's transforms.

Usage:
    .venv/bin/python benchmarks/bench_preprocess.py [--scans 40] [--reps 3]

Builds `--scans` smooth random volumes shaped like the demo's and upstream's inputs (MR and CT; axial, sagittal,
coronal, oblique and gantry-tilted grids; 20-60 slices of 128-320 pixels), preprocesses each with both
implementations for the demo's grid (32 x 64 x 64 at 4 x 3.5 x 3.5 mm) and an upstream-sized one (resized to
48 x 224 x 224), and prints ms per scan (best of `--reps` passes, interleaved, since the machine is shared),
the import time of each implementation in a fresh interpreter, and how many output voxels differ. Asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

GRIDS = {
    "demo 32x64x64 @ 4x3.5x3.5 mm": {"size": (32, 64, 64), "spacing": (4.0, 3.5, 3.5)},
    "upstream 48x224x224 resize": {"size": (48, 224, 224), "spacing": None, "size_mode": "resize"},
}
PLANES = [("axial", 0.0, 0.0), ("sagittal", 0.0, 0.0), ("coronal", 0.0, 0.0), ("axial", 15.0, 0.0), ("axial", 0.0, 0.2)]


def _volumes(n: int) -> list[tuple[object, str, str]]:
    from scipy import ndimage

    from hlip.data.volume import Volume
    from testkit.preprocess_reference import smooth_volume

    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        plane, oblique, shear = PLANES[i % len(PLANES)]
        modality = "CT" if i % 3 == 0 else "MR"
        small = smooth_volume(i, plane, oblique=oblique, shear=shear, ct=modality == "CT")
        slices, side = int(rng.integers(20, 61)), int(rng.choice([128, 192, 256, 320]))
        zoom = (slices / small.array.shape[0], side / small.array.shape[1], side / small.array.shape[2])
        array = ndimage.zoom(small.array, zoom, order=1).astype(np.float32)
        affine = small.affine.copy()
        for axis, factor in zip((2, 1, 0), zoom, strict=True):  # columns (i, j, k) = (cols, rows, slices)
            affine[:3, axis] /= factor
        out.append((Volume(array, affine), modality, plane))
    return out


def _import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from hlip.data.preprocess import PreprocessConfig, preprocess
    from testkit.preprocess_reference import monai_preprocess

    volumes = _volumes(args.scans)
    voxels = sum(v.array.size for v, _, _ in volumes)
    print(f"{len(volumes)} volumes, {voxels / len(volumes) / 1e6:.1f} M voxels each on average")
    print(f"\n{'grid':30s} {'ours ms/scan':>13s} {'MONAI ms/scan':>14s} {'MONAI / ours':>13s} {'voxels differ':>14s}")
    for name, spec in GRIDS.items():
        config = PreprocessConfig(**spec)  # type: ignore[arg-type]
        best = {"ours": float("inf"), "monai": float("inf")}
        volume, modality, plane = volumes[0]
        preprocess(volume, modality, plane, config)  # type: ignore[arg-type]  # warm-up: lazy imports, first calls
        monai_preprocess(volume, modality, plane, config)  # type: ignore[arg-type]
        for _ in range(args.reps):
            for label, fn in (("ours", preprocess), ("monai", monai_preprocess)):
                start = time.perf_counter()
                for volume, modality, plane in volumes:
                    fn(volume, modality, plane, config)  # type: ignore[operator]
                best[label] = min(best[label], (time.perf_counter() - start) / len(volumes))
        differ = total = 0
        for volume, modality, plane in volumes:
            for scan, (_, array, _) in zip(preprocess(volume, modality, plane, config),  # type: ignore[arg-type]
                                           monai_preprocess(volume, modality, plane, config), strict=True):  # type: ignore[arg-type]  # fmt: skip
                differ += int(np.count_nonzero(scan.array != array))
                total += array.size
        ratio = best["monai"] / best["ours"]
        print(f"{name:30s} {1000 * best['ours']:13.1f} {1000 * best['monai']:14.1f} {ratio:13.2f} "
              f"{differ:>7d} / {total / 1e6:.1f} M")  # fmt: skip
    ours = _import_seconds("import hlip.data.preprocess, scipy.ndimage")
    monai = _import_seconds("import monai.transforms")
    print(f"\nimport in a fresh interpreter: hlip.data.preprocess {ours:.2f} s, monai.transforms {monai:.2f} s")


if __name__ == "__main__":
    main()
