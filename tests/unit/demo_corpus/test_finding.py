"""Each finding looks on each sequence as the ground truth says (noise-free signal, 2 mm template)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from demo_corpus.anatomy import load_anatomy, load_template
from demo_corpus.finding import PLANNERS, Finding, describe_location
from demo_corpus.geometry import Grid, Pose, plan_grid, sample_pose
from demo_corpus.lesion import blob_mask
from demo_corpus.render import noise_free_signal

SEQUENCES = ("t1", "t1c", "t2", "flair", "dwi_b0", "dwi_b1000", "adc", "swi")


def _through(rng: np.random.Generator, pose: Pose, centre: tuple[float, float, float]) -> Grid:
    """A single axial slice through a template point, 1.5 mm pixels."""
    grid = plan_grid(rng, pose, "axial", 160, 3.0, 0.0)
    point = pose.to_patient(np.asarray(centre))
    normal = np.asarray(grid.slice_step) / grid.spacing
    origin = np.asarray(grid.origin) + normal * float((point - np.asarray(grid.origin)) @ normal)
    return replace(grid, origin=tuple(map(float, origin)), n_slices=1)


def _ratios(name: str, seed: int, compartment: str | None = None) -> tuple[Finding, dict[str, float]]:
    """Mean signal in the lesion over mean signal in normal brain tissue of the same slice, per sequence."""
    rng = np.random.default_rng(seed)
    template, anatomy = load_template(2), load_anatomy(2)
    pose = sample_pose(rng)
    finding = PLANNERS[name](rng, template)
    blob = next(b for b in finding.blobs if compartment in (None, b.compartment))
    grid = _through(rng, pose, blob.centre)
    with_lesion = noise_free_signal(anatomy, pose, [finding], grid, SEQUENCES)
    without = noise_free_signal(anatomy, pose, [], grid, SEQUENCES)
    points = grid.points(pose)
    tissue = anatomy.sample(points)  # undisplaced: fine for choosing grey and white matter voxels
    parenchyma = (tissue["gm"] + tissue["wm"]) > 0.8
    changed = np.abs(with_lesion["flair"] - without["flair"]) + np.abs(with_lesion["t1c"] - without["t1c"])
    lesion = (blob_mask(blob, points) > 0.9) & (changed > 0.05)
    if blob.weighting != "intracranial":  # intra-axial lesions: compare parenchyma with parenchyma
        lesion &= parenchyma
    if blob.compartment == "edema":  # vasogenic edema tracks the white matter, around the enhancing ring
        solid = [b for b in finding.blobs if b.compartment == "met_ring" and b.centre == blob.centre]
        lesion &= (tissue["wm"] > 0.6) & (blob_mask(solid[0], points) == 0)
    normal = parenchyma & (blob_mask(blob, points) == 0) & (changed < 1e-3)
    assert lesion.sum() >= 10
    assert normal.sum() >= 100
    return finding, {s: float(with_lesion[s][lesion].mean() / with_lesion[s][normal].mean()) for s in SEQUENCES}


@pytest.mark.parametrize("seed", [1, 2])
def test_stroke_restricts_diffusion(seed: int) -> None:
    finding, r = _ratios("stroke", seed)
    assert finding.territory in ("MCA", "PCA", "ACA")
    assert r["dwi_b1000"] > 1.6
    assert r["adc"] < 0.65
    assert r["flair"] > 1.1  # mildly bright on FLAIR


@pytest.mark.parametrize("seed", [1, 2])
def test_t2_shine_through_is_dwi_bright_without_low_adc(seed: int) -> None:
    _, r = _ratios("t2_shine_through", seed)
    assert r["dwi_b1000"] > 1.3
    assert r["adc"] > 1.0


@pytest.mark.parametrize("seed", [1, 2])
def test_meningioma_enhances_and_is_iso_on_t1(seed: int) -> None:
    finding, r = _ratios("meningioma", seed, "meningioma")
    assert r["t1c"] > 1.6
    assert r["t1c"] / r["t1"] > 2.0
    assert 0.6 < r["t1"] < 1.0  # about grey matter, against mixed grey and white
    assert (finding.mass_effect and finding.region in ("falx", "sphenoid wing")) or finding.region.endswith("convexity")


@pytest.mark.parametrize("seed", [1, 2])
def test_t1_hyperintensity_is_bright_before_and_after_contrast(seed: int) -> None:
    _, r = _ratios("t1_hyperintensity", seed)
    assert r["t1"] > 1.3
    assert abs(r["t1c"] / r["t1"] - 1.0) < 0.1


@pytest.mark.parametrize("seed", [1, 2])
def test_glioma_is_flair_bright_with_mass_effect_and_no_enhancement(seed: int) -> None:
    finding, r = _ratios("glioma", seed)
    assert r["flair"] > 1.5
    assert r["t2"] > 1.4
    assert r["t1"] < 0.8
    assert r["t1c"] / r["t1"] < 1.15
    assert finding.mass_effect[0].strength > 0.3


@pytest.mark.parametrize("seed", [1, 2])
def test_metastases_ring_enhance_with_edema(seed: int) -> None:
    finding, ring = _ratios("metastasis", seed, "met_ring")
    _, edema = _ratios("metastasis", seed, "edema")
    assert finding.count >= 2
    assert ring["t1c"] > 1.5
    assert edema["flair"] > 1.4


def test_incidental_findings_show_on_their_sequence() -> None:
    _, wmh = _ratios("white_matter_hyperintensity", 3)
    assert wmh["flair"] > 1.3
    rng = np.random.default_rng(4)
    bleeds = PLANNERS["microbleeds"](rng, load_template(2))
    pose = sample_pose(rng)
    grid = _through(rng, pose, bleeds.blobs[0].centre)
    signal = noise_free_signal(load_anatomy(2), pose, [bleeds], grid, ("swi",))["swi"]
    plain = noise_free_signal(load_anatomy(2), pose, [], grid, ("swi",))["swi"]
    assert (signal < plain - 0.2).sum() >= 1  # dark dots on SWI


def test_mass_effect_displaces_the_anatomy() -> None:
    rng = np.random.default_rng(5)
    pose = sample_pose(rng)
    finding = PLANNERS["glioma"](rng, load_template(2))
    grid = _through(rng, pose, finding.blobs[0].centre)
    no_blobs = replace(finding, blobs=())
    moved = noise_free_signal(load_anatomy(2), pose, [no_blobs], grid, ("t1",))["t1"]
    plain = noise_free_signal(load_anatomy(2), pose, [], grid, ("t1",))["t1"]
    assert np.abs(moved - plain).mean() > 0.01


def test_locations_are_named_like_a_report() -> None:
    assert describe_location((40.0, 10.0, 30.0)) == ("right", "frontal lobe")
    assert describe_location((-30.0, -85.0, 5.0)) == ("left", "occipital lobe")
    assert describe_location((-20.0, -70.0, -35.0)) == ("left", "cerebellar hemisphere")
