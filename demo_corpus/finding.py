"""Findings a study can carry, placed where a radiologist would expect them in the template anatomy.

Each planner returns a `Finding`: the blobs that render it, the mass effect it exerts and the words a report
uses for it (side, region, size, count). Placement samples template voxels meeting anatomical conditions
(grey-white junction for metastases, hemispheric white matter for glioma, the convexity or falx for meningioma,
a vascular territory for stroke).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from demo_corpus.anatomy import Template
from demo_corpus.geometry import Vec3, as_vec3
from demo_corpus.lesion import Blob, MassEffect


@dataclass(frozen=True)
class Finding:
    """One rendered finding of a study.

    Attributes:
        name: One of `vocabulary.FINDINGS`.
        blobs: What renders it.
        mass_effect: How it displaces the anatomy.
        side: ``left``, ``right`` or ``bilateral``.
        region: Anatomical words for the report (``frontal lobe``, ``MCA territory`` ...).
        size_cm: Largest diameter in centimetres.
        count: Number of lesions (metastases, foci).
        territory: Vascular territory of an infarct (``MCA``, ``PCA``, ``ACA``).
    """

    name: str
    blobs: tuple[Blob, ...]
    mass_effect: tuple[MassEffect, ...] = ()
    side: str = "left"
    region: str = ""
    size_cm: float = 0.0
    count: int = 1
    territory: str = ""

    def scaled(self, factor: float) -> Finding:
        """The same finding grown or shrunk, as seen on a follow-up study."""
        effects = tuple(replace(m, sigma=m.sigma * factor) for m in self.mass_effect)
        return replace(
            self,
            blobs=tuple(b.scaled(factor) for b in self.blobs),
            mass_effect=effects,
            size_cm=round(self.size_cm * factor, 1),
        )


def _coords(t: Template) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    return t.xyz[0], t.xyz[1], t.xyz[2]


def _pick(rng: np.random.Generator, t: Template, candidates: NDArray[np.int64]) -> Vec3:
    """A random template point among candidate voxel indices ``[N, 3]``, jittered within its voxel."""
    if len(candidates) == 0:
        raise ValueError("no template voxel meets the placement condition")
    point = t.to_mni(candidates[rng.integers(len(candidates))]) + rng.uniform(-0.5, 0.5, 3) * t.resolution
    return (float(point[0]), float(point[1]), float(point[2]))


_REGIONS: dict[tuple[int, str], NDArray[np.int64]] = {}


def _region(t: Template, key: str, condition: Callable[[], NDArray[np.bool_]]) -> NDArray[np.int64]:
    """Voxel indices meeting a placement condition, computed once per template and key."""
    if (id(t), key) not in _REGIONS:
        _REGIONS[(id(t), key)] = np.argwhere(condition())
    return _REGIONS[(id(t), key)]


def describe_location(centre: Vec3) -> tuple[str, str]:
    """Side and lobe of an MNI point, as a report names them."""
    x, y, z = centre
    side = "right" if x > 0 else "left"  # MNI is RAS: +x is the patient's right
    if z < -18 and y < -45:
        return side, "cerebellar hemisphere"
    if abs(x) < 28 and -30 < y < 12 and -6 < z < 18:
        return side, "thalamus" if y < -12 else "basal ganglia"
    if y < -68:
        return side, "occipital lobe"
    if z < 2 and abs(x) > 28 and y < 10:
        return side, "temporal lobe"
    if y > -12:
        return side, "frontal lobe"
    return side, "parietal lobe"


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def _side_sign(rng: np.random.Generator) -> float:
    return -1.0 if rng.random() < 0.5 else 1.0


def plan_stroke(rng: np.random.Generator, t: Template) -> Finding:
    """An acute infarct in a vascular territory: a cortical-subcortical wedge of parenchyma."""
    x, y, z = _coords(t)
    s = _side_sign(rng)
    territory = str(rng.choice(["MCA", "MCA", "MCA", "PCA", "ACA"]))
    boxes = {"MCA": (28, 52, -55, 20, -5, 42), "PCA": (8, 32, -92, -64, -6, 22), "ACA": (4, 14, -25, 35, 28, 58)}
    x0, x1, y0, y1, z0, z1 = boxes[territory]
    cond = _region(
        t,
        f"stroke{territory}{s}",
        lambda: ((t.gm + t.wm) > 0.8) & (s * x > x0) & (s * x < x1) & (y > y0) & (y < y1) & (z > z0) & (z < z1),
    )
    if territory == "MCA":
        radii = (rng.uniform(10, 15), rng.uniform(16, 26), rng.uniform(14, 22))
    elif territory == "PCA":
        radii = (rng.uniform(10, 14), rng.uniform(14, 20), rng.uniform(11, 16))
    else:
        radii = (rng.uniform(8, 11), rng.uniform(16, 24), rng.uniform(12, 18))
    centre = _pick(rng, t, cond)
    blob = Blob("stroke", centre, (float(radii[0]), float(radii[1]), float(radii[2])), 0.25, _seed(rng), 4.0)
    side, lobe = describe_location(centre)
    return Finding("stroke", (blob,), (), side, lobe, round(2 * max(radii) / 10, 1), territory=territory)


def plan_glioma(rng: np.random.Generator, t: Template) -> Finding:
    """An infiltrative hemispheric white-matter mass with mass effect and little or no enhancement."""
    x, y, z = _coords(t)
    s = _side_sign(rng)
    cond = _region(
        t,
        f"glioma{s}",
        lambda: (t.wm > 0.85) & (s * x > 18) & (s * x < 45) & (y > -70) & (y < 35) & (z > -15) & (z < 45),
    )
    centre = np.asarray(_pick(rng, t, cond))
    main_r = float(rng.uniform(17, 26))
    blobs = [Blob("glioma", as_vec3(centre), (main_r, main_r * 0.9, main_r * 0.85), 0.4, _seed(rng), 12.0, "glioma")]
    for _ in range(int(rng.integers(1, 4))):
        direction = rng.normal(size=3)
        lobule = centre + direction / np.linalg.norm(direction) * rng.uniform(8, 15)
        r = float(rng.uniform(9, 15))
        blobs.append(Blob("glioma", as_vec3(lobule), (r, r, r), 0.45, _seed(rng), 10.0, "glioma"))
    if rng.random() < 0.25:  # a faint patchy focus of enhancement in some
        blobs.append(Blob("glioma_enh", as_vec3(centre), (5.0, 4.0, 4.0), 0.4, _seed(rng), 2.5))
    effect = MassEffect(as_vec3(centre), sigma=main_r * 1.1, strength=float(rng.uniform(0.35, 0.5)))
    side, lobe = describe_location(as_vec3(centre))
    return Finding("glioma", tuple(blobs), (effect,), side, lobe, round(2 * (main_r + 6) / 10, 1))


def plan_meningioma(rng: np.random.Generator, t: Template) -> Finding:
    """An extra-axial dural-based mass at the convexity, falx or sphenoid wing, with a dural tail."""
    x, y, z = _coords(t)
    s = _side_sign(rng)
    surface = t.surface
    where = str(rng.choice(["convexity", "convexity", "falx", "sphenoid wing"]))
    conditions = {
        "convexity": lambda: surface & (s * x > 25) & (z > 10) & (y > -70) & (y < 45),
        "falx": lambda: (t.brain > 0.5) & (s * x > 3) & (s * x < 7) & (z > 25) & (z < 60) & (y > -60) & (y < 30),
        "sphenoid wing": lambda: surface & (s * x > 25) & (s * x < 50) & (z > -25) & (z < -5) & (y > -5) & (y < 25),
    }
    cond = _region(t, f"meningioma{where}{s}", conditions[where])
    anchor = np.asarray(_pick(rng, t, cond))
    outward = anchor - np.array([0.0, -18.0, 10.0]) if where != "falx" else np.array([-s, 0.0, 0.0])
    outward /= np.linalg.norm(outward)
    r = float(rng.uniform(13, 21))
    centre = as_vec3(anchor - outward * r * 0.3)  # the dome indents the brain
    blobs = [
        Blob("meningioma", centre, (r, r, r * 0.9), 0.08, _seed(rng), 1.5, "intracranial"),
        Blob("dural_tail", centre, (r * 1.8, r * 1.8, r * 1.8), 0.1, _seed(rng), 6.0, "dura"),
    ]
    if rng.random() < 0.25:
        blobs.insert(0, Blob("edema", centre, (r * 1.6, r * 1.6, r * 1.5), 0.35, _seed(rng), 6.0, "wm"))
    effect = MassEffect(centre, sigma=r, strength=float(rng.uniform(0.5, 0.65)))
    side, lobe = describe_location(as_vec3(anchor))
    region = {"convexity": f"{lobe.split()[0]} convexity", "falx": "falx", "sphenoid wing": "sphenoid wing"}[where]
    return Finding("meningioma", tuple(blobs), (effect,), side, region, round(2 * r / 10, 1))


def plan_metastases(rng: np.random.Generator, t: Template) -> Finding:
    """Several small ring-enhancing lesions at the grey-white junction, each with vasogenic edema."""
    junction = _region(t, "junction", lambda: (t.gm > 0.3) & (t.gm < 0.7) & (t.wm > 0.3) & (t.brain > 0.5))
    n = int(rng.choice([2, 3, 3, 4, 4, 5, 6]))
    centres: list[NDArray[np.float64]] = []
    while len(centres) < n:
        c = np.asarray(_pick(rng, t, junction))
        if all(np.linalg.norm(c - o) > 22.0 for o in centres):
            centres.append(c)
    blobs: list[Blob] = []
    effects: list[MassEffect] = []
    radii = sorted((float(rng.uniform(5.0, 10.0)) for _ in range(n)), reverse=True)
    for c, r in zip(centres, radii, strict=True):
        centre = as_vec3(c)
        edema_r = r * float(rng.uniform(2.2, 3.0))
        blobs.append(Blob("edema", centre, (edema_r,) * 3, 0.35, _seed(rng), 6.0, "wm"))
        shell = r if r < 6.5 else float(rng.uniform(2.0, 2.8))  # small ones enhance solidly
        seed = _seed(rng)
        blobs.append(Blob("met_ring", centre, (r,) * 3, 0.1, seed, 1.5, "tissue", shell_mm=shell))
        if shell < r:
            blobs.append(Blob("met_core", centre, (r,) * 3, 0.1, seed, 1.5, "tissue", shell_mm=shell, core=True))
        if r > 7.5:
            effects.append(MassEffect(centre, sigma=r * 1.5, strength=0.3))
    side, lobe = describe_location(as_vec3(centres[0]))
    sides = {describe_location(as_vec3(c))[0] for c in centres}
    return Finding(
        "metastasis",
        tuple(blobs),
        tuple(effects),
        side if len(sides) == 1 else "bilateral",
        lobe,
        round(2 * radii[0] / 10, 1),
        n,
    )


def plan_shine_through(rng: np.random.Generator, t: Template) -> Finding:
    """A T2-bright subacute/chronic lesion: bright on DWI through its T2 signal, ADC normal or high."""
    x, _, z = _coords(t)
    cond = _region(t, "shine", lambda: ((t.gm + t.wm) > 0.85) & (np.abs(x) > 20) & (z > -5))
    centre = _pick(rng, t, cond)
    r = float(rng.uniform(8, 12))
    side, lobe = describe_location(centre)
    blob = Blob("shine", centre, (r, r * 0.9, r * 0.9), 0.25, _seed(rng), 3.0)
    return Finding("t2_shine_through", (blob,), (), side, lobe, round(2 * r / 10, 1))


def plan_t1_hyperintensity(rng: np.random.Generator, t: Template) -> Finding:
    """A focus bright on T1 before and after contrast (blood products, protein): not enhancement."""
    x, y, z = _coords(t)
    deep = _region(
        t,
        "deep grey",
        lambda: (t.gm > 0.4) & (np.abs(x) > 14) & (np.abs(x) < 30) & (y > -15) & (y < 12) & (z > -4) & (z < 14),
    )
    cortical = _region(t, "cortex", lambda: (t.gm > 0.5) & (z > 0))
    centre = _pick(rng, t, deep if rng.random() < 0.5 else cortical)
    r = float(rng.uniform(5.5, 8.0))
    side, lobe = describe_location(centre)
    blob = Blob("t1hyper", centre, (r, r, r), 0.15, _seed(rng), 2.0)
    return Finding("t1_hyperintensity", (blob,), (), side, lobe, round(2 * r / 10, 1))


def _foci(
    rng: np.random.Generator,
    t: Template,
    name: str,
    compartment: str,
    candidates: NDArray[np.int64],
    count: tuple[int, int],
    radius: tuple[float, float],
    weighting: str,
    region: str,
) -> Finding:
    n = int(rng.integers(count[0], count[1] + 1))
    blobs = []
    for _ in range(n):
        r = float(rng.uniform(*radius))
        blobs.append(Blob(compartment, _pick(rng, t, candidates), (r, r, r), 0.2, _seed(rng), 1.5, weighting))
    return Finding(name, tuple(blobs), (), "bilateral", region, round(2 * radius[1] / 10, 1), n)


def plan_white_matter_hyperintensity(rng: np.random.Generator, t: Template) -> Finding:
    """Scattered periventricular and deep white-matter FLAIR-bright foci."""
    x, _, z = _coords(t)
    cond = _region(t, "wmh", lambda: (t.wm > 0.85) & (np.abs(x) > 8) & (np.abs(x) < 38) & (z > 0) & (z < 48))
    return _foci(
        rng,
        t,
        "white_matter_hyperintensity",
        "wmh",
        cond,
        (5, 14),
        (2.5, 5.0),
        "wm",
        "periventricular and deep white matter",
    )


def plan_microbleeds(rng: np.random.Generator, t: Template) -> Finding:
    """A few punctate SWI-dark foci at the grey-white junction and in the deep grey nuclei."""
    cond = _region(t, "microbleeds", lambda: (t.gm > 0.35) & (t.wm > 0.25) & (t.brain > 0.5))
    return _foci(
        rng, t, "microbleeds", "microbleed", cond, (2, 7), (1.6, 2.6), "tissue", "subcortical and deep regions"
    )


PLANNERS: dict[str, Callable[[np.random.Generator, Template], Finding]] = {
    "stroke": plan_stroke,
    "glioma": plan_glioma,
    "meningioma": plan_meningioma,
    "metastasis": plan_metastases,
    "white_matter_hyperintensity": plan_white_matter_hyperintensity,
    "microbleeds": plan_microbleeds,
    "t2_shine_through": plan_shine_through,
    "t1_hyperintensity": plan_t1_hyperintensity,
}
