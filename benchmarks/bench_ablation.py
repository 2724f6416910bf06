"""Attention ablation on the demo corpus: does attention across a study's scans help where a finding needs two series?

Three `hlip-demo` variants, identical but for `vision.levels` (through `pretrain.model_overrides`), each trained
with N seeds on the same studies and the `params.yaml` schedule (warm-up then contrastive):

- `scan`: every block attends within one scan (`hlip-demo-scan`);
- `scan+study`: the shipped interleaving (`hlip-demo`);
- `full`: every block attends over the whole study (`hlip-demo-full`).

Scored zero-shot with the benchmark's class prompts (`brain_mri_demo`, 5-way softmax):

1. **Per-class AUC** on the demo benchmark's test studies (the seeded 70 % split `evaluate` reports on), each
   variant's AUC averaged over its seeds, with a 95 % bootstrap CI over studies, and the paired difference of macro
   AUC to `scan` with its CI (same studies resampled for both).
2. **Paired mimic tasks**, which the benchmark's ground truth does not record (it holds the class only):
   scored on a held-out quarter of the *training* part, whose ground truth (`ground_truth/train_labels.csv`) has a
   0/1 column per rendered finding. Those studies are left out of training (every variant, every seed):
   - `stroke vs shine-through`: stroke studies against T2 shine-through studies without stroke, score P(stroke),
     on the studies whose ingested scans include DWI *and* ADC; again with the ADC scans withheld;
   - `enhancing vs T1-bright`: meningioma or metastasis studies against intrinsic T1 hyperintensity without
     them, score P(meningioma) + P(metastasis), on studies with T1 *and* T1 post-contrast; again without T1.
   If only attention across scans could combine the two series, withholding the second would cost `scan+study`
   more than `scan`.
3. **What the embeddings carry, whatever the prompts**: a linear probe fit on the *training* studies' embeddings
   and their ground-truth class (every study the run trained on, about 1,100, instead of the benchmark's 60
   validation studies that `evaluate`'s probe has), scored on the same test studies. Zero-shot near this probe
   means the prompts reach what the tower learnt; zero-shot far below it means the text side falls short; both
   low means the tower itself does (`--no-train-probe` skips it: one more embedding pass per model).
4. **Per-kind read-outs of each scan's features** (`--kind-probes`): the same probe on each scan's features from
   inside the tower (the conv stem's token grid; the last block's patch tokens), pooled per sequence kind as the
   reference is, so that neither the study pooling nor the prompts stand between the features and the score.
5. **Pair coverage**: how often both series of a pair reach the model: present after ingest, inside the canonical
   first `max_scans` at evaluation, and the chance that a training draw (`max_n`: a random subset) holds both.

Studies are loaded as evaluation loads them: the ingested uint8 scans in canonical kind/plane order, the first
`max_scans` (`hlip.data.sampling`), scaled to [0, 1].

Usage:
    .venv/bin/python benchmarks/bench_ablation.py --smoke     # a tiny corpus made on the fly, 1 + 1 epochs, 1 seed
    .venv/bin/python benchmarks/bench_ablation.py --seeds 3   # the real table: data/, outputs/ingest, outputs/labels
The real run trains 9 models on the default schedule (about 13 min each on 2 quiet CPU cores; minutes on a GPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.numerics import pin_portable_cpu_numerics

pin_portable_cpu_numerics()  # the pipeline's kernel paths (flows do the same), before anything imports torch or NumPy

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from hlip.config import load_params  # noqa: E402
from hlip.data.deid import HashKey  # noqa: E402
from hlip.data.sampling import ScanPolicy, canonical_order, select_scans  # noqa: E402
from hlip.evaluation.bootstrap import bootstrap_ci  # noqa: E402
from hlip.evaluation.config import EvaluateConfig  # noqa: E402
from hlip.evaluation.metrics import auc_per_label, macro  # noqa: E402
from hlip.evaluation.thresholds import validation_split  # noqa: E402
from hlip.stages.evaluate import EvaluateParams  # noqa: E402

logger = logging.getLogger("bench_ablation")

VARIANTS: dict[str, list[str]] = {
    "scan": ["scan", "scan", "scan", "scan"],
    "scan+study": ["scan", "study", "scan", "study"],
    "full": ["study", "study", "study", "study"],
}
CLASSES = ("normal", "stroke", "glioma", "meningioma", "metastasis")
PROMPTS = "brain_mri_demo"


@dataclass(frozen=True)
class PairTask:
    """A mimic pair: positives, negatives, the two series it needs, the one withheld, and the score's classes."""

    name: str
    positive: Callable[[pd.DataFrame], pd.Series]
    negative: Callable[[pd.DataFrame], pd.Series]
    needs: tuple[str, str]
    withhold: str
    score: tuple[str, ...]


PAIRS = (
    PairTask(
        "stroke vs shine-through",
        lambda t: t["stroke"] == 1,
        lambda t: (t["t2_shine_through"] == 1) & (t["stroke"] == 0),
        ("dwi", "adc"),
        "adc",
        ("stroke",),
    ),
    PairTask(
        "enhancing vs T1-bright",
        lambda t: (t["meningioma"] == 1) | (t["metastasis"] == 1),
        lambda t: (t["t1_hyperintensity"] == 1) & (t["meningioma"] == 0) & (t["metastasis"] == 0),
        ("t1", "t1c"),
        "t1",
        ("meningioma", "metastasis"),
    ),
)


# -- data ------------------------------------------------------------------------------------------------------------


def make_smoke_data(work: Path, n_train: int, n_benchmark: int) -> tuple[Path, Path, Path]:
    """A tiny demo corpus, ingested and labelled like the pipeline does: (corpus, ingest root, labels root)."""
    from demo_corpus import DemoCorpusConfig, generate_corpus
    from hlip.data.config import IngestConfig
    from hlip.data.ingest import ingest
    from hlip.labels.config import LabelConfig
    from hlip.labels.finding_list import load_findings
    from hlip.labels.labeler import label_part
    from hlip.labels.outputs import write_part

    corpus, ingest_root, labels_root = work / "corpus", work / "ingest", work / "labels"
    generate_corpus(corpus, DemoCorpusConfig.tiny(seed=11, n_train_studies=n_train, n_benchmark_studies=n_benchmark))
    for part in ("train", "benchmark"):
        ingest(corpus / part / "dicom", ingest_root / part, reports=corpus / part / "reports.csv",
               config=IngestConfig(workers=2))  # fmt: skip
    result = label_part(ingest_root / "train" / "reports.parquet", load_findings("brain_mri"), LabelConfig())
    write_part(result, labels_root / "train")
    return corpus, ingest_root, labels_root


def truth_by_key(corpus: Path, key: HashKey, hash_length: int) -> tuple[pd.DataFrame, pd.Series]:
    """Ground truth by keyed study hash: the training part's finding table and the benchmark's class."""
    gt = corpus / "ground_truth"
    train = pd.read_csv(gt / "train_labels.csv", dtype={"study_instance_uid": str})
    bench = pd.read_csv(gt / "benchmark_labels.csv", dtype=str)
    train.index = [key.hash("study", uid, hash_length) for uid in train["study_instance_uid"]]
    bench.index = [key.hash("study", uid, hash_length) for uid in bench["study_instance_uid"]]
    return train, bench["label"]


def images_fingerprint(part_dir: Path) -> str:
    """A digest of an ingested part's scan intensities (key, mean, std of every volume): the same study IDs drawn
    from a regenerated corpus give another value, so scores of other images are never compared pairwise."""
    scans = pd.read_parquet(part_dir / "scans.parquet", columns=["scan_key", "voxel_mean", "voxel_std"])
    rows = sorted(f"{k}:{m:.6g}:{sd:.6g}" for k, m, sd in scans.itertuples(index=False))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def held_out(keys: Sequence[str], fraction: float) -> set[str]:
    """A fixed share of studies, chosen by a hash of their key (the same whatever the order or the run)."""
    score = {k: int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 16**8 for k in keys}
    return {k for k, s in score.items() if s < fraction}


def fit_part(ingest_root: Path, labels_root: Path, drop: set[str], work: Path) -> tuple[Path, Path]:
    """The training part without the held-out studies (tables filtered, volumes linked): (ingest root, labels root)."""
    src, dst = ingest_root / "train", work / "fit_ingest" / "train"
    if dst.parent.exists():  # a --work folder used before (more seeds of the same runs): rebuilt, runs kept
        shutil.rmtree(dst.parent)
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "volumes":
            (dst / "volumes").symlink_to(item.resolve(), target_is_directory=True)
        elif item.suffix == ".parquet" and "study_key" in pd.read_parquet(item).columns:
            table = pd.read_parquet(item)
            table[~table["study_key"].isin(drop)].to_parquet(dst / item.name, index=False)
        elif item.is_file():
            shutil.copy2(item, dst / item.name)
        else:
            shutil.copytree(item, dst / item.name)
    labels = pd.read_parquet(labels_root / "train" / "labels.parquet")
    (work / "fit_labels" / "train").mkdir(parents=True, exist_ok=True)
    labels[~labels["study_key"].isin(drop)].to_parquet(work / "fit_labels" / "train" / "labels.parquet", index=False)
    return work / "fit_ingest", work / "fit_labels"


class StudyLoader:
    """Studies of one ingested part as evaluation sees them, optionally with some scan kinds withheld."""

    def __init__(self, part_dir: Path, max_scans: int) -> None:
        self.part_dir = part_dir
        self.policy = ScanPolicy(mode="max_n", max_scans=max_scans)
        columns = ["study_key", "scan_key", "kind", "plane", "b_value", "path"]
        scans = pd.read_parquet(part_dir / "scans.parquet", columns=columns)
        self.scans = {str(k): g.reset_index(drop=True) for k, g in scans.groupby("study_key", sort=True)}

    def kinds(self, study: str) -> list[str]:
        return list(self.scans[study]["kind"]) if study in self.scans else []

    def chosen(self, study: str, withhold: frozenset[str] = frozenset()) -> pd.DataFrame:
        rows = self.scans[study]
        rows = rows[~rows["kind"].isin(withhold)].reset_index(drop=True)
        order = canonical_order(list(rows["kind"]), list(rows["plane"]), list(rows["scan_key"]))
        return rows.iloc[select_scans(order, self.policy, None)]

    def load(self, study: str, withhold: frozenset[str] = frozenset()) -> NDArray[np.float32]:
        arrays = [np.load(self.part_dir / str(p)) for p in self.chosen(study, withhold)["path"]]
        return (np.stack(arrays).astype(np.float32) / np.float32(255.0)).astype(np.float32)  # [N, D, H, W]


# -- the reference without a deep model ------------------------------------------------------------------------------

#: Sequence kinds of the reference's per-kind features (DWI split by b-value: the b0 image looks like a T2).
REFERENCE_KINDS = ("dwi_b0", "dwi", "adc", "flair", "t2", "t1", "t1c", "swi")


def reference_kind(kind: object, b_value: object) -> str:
    """A scan's kind for per-kind read-outs: the ingest's kind, DWI split at b = 100 (the b0 image looks like a T2)."""
    return "dwi_b0" if kind == "dwi" and float(b_value or 0) <= 100 else str(kind)  # type: ignore[arg-type]


def scan_statistics(volume: NDArray[np.float32]) -> NDArray[np.float64] | None:
    """First-order statistics of one scan `[D, H, W]` (0..1) inside its head mask eroded by 3 voxels: the upper and
    lower tails (p99.5, p95 above and p0.5, p5 below the median) in units of the standard deviation, the shares (x10)
    of voxels more than 2 deviations above and below the median, and 1 (present). None for a near-empty scan."""
    from scipy import ndimage

    head = volume > 10 / 255
    brain = ndimage.binary_erosion(head, iterations=3)
    values = volume[brain] if brain.sum() > 500 else volume[head]
    if values.size < 100:
        return None
    median, spread = float(np.median(values)), float(values.std()) + 1e-3
    p005, p5, p95, p995 = np.percentile(values, [0.5, 5, 95, 99.5])
    return np.array([(p995 - median) / spread, (median - p005) / spread, (p95 - median) / spread,
                     (median - p5) / spread, 10 * float(np.mean(values > median + 2 * spread)),
                     10 * float(np.mean(values < median - 2 * spread)), 1.0])  # fmt: skip


def intensity_features(loader: StudyLoader, keys: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per study, the scans evaluation loads summarised by `scan_statistics`: `[N, 8 kinds x 7]` (each kind's
    maximum, zeros where absent) and `[N, 3 x 7]` without the kind (maximum, mean and minimum over the scans)."""
    per_kind, agnostic = [], []
    for key in keys:
        rows, volumes = loader.chosen(key), loader.load(key)
        table = np.zeros((len(REFERENCE_KINDS), 7))
        stats = []
        for (_, row), volume in zip(rows.iterrows(), volumes, strict=True):
            kind = reference_kind(row["kind"], row["b_value"])
            if kind not in REFERENCE_KINDS:
                continue
            stat = scan_statistics(volume)
            if stat is None:
                continue
            slot = REFERENCE_KINDS.index(kind)
            table[slot] = np.maximum(table[slot], stat)
            stats.append(stat)
        many = np.array(stats) if stats else np.zeros((1, 7))
        per_kind.append(table.ravel())
        agnostic.append(np.concatenate([many.max(0), many.mean(0), many.min(0)]))
    return np.array(per_kind), np.array(agnostic)


def reference_probabilities(
    fit: NDArray[np.float64], y_fit: NDArray[np.int64], test: NDArray[np.float64], config: EvaluateConfig
) -> NDArray[np.float64]:
    """The probe of `probe_probabilities` on standardised features (statistics of the fit rows)."""
    mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-6
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return probe_probabilities(scale(fit), y_fit, scale(test), config)


# -- what each scan's features hold ---------------------------------------------------------------------------------

#: Per-kind read-outs of a tower's per-scan features: name -> (where in the tower, pooling over a scan's tokens and
#: over the scans of a kind).
KIND_PROBES = {
    "stem output, max per kind": ("stem", "max"),
    "last block, mean per kind": ("last", "mean"),
    "last block, max per kind": ("last", "max"),
}


def pool_per_kind(features: NDArray[np.float32], kinds: Sequence[str], how: str) -> NDArray[np.float32]:
    """`[S, C]` features of one study's scans -> `[len(REFERENCE_KINDS) * C]`: the mean or the maximum over each
    kind's scans, zeros where the study has none; scans of other kinds are left out."""
    out = np.zeros((len(REFERENCE_KINDS), features.shape[1]), dtype=np.float32)
    for slot, kind in enumerate(REFERENCE_KINDS):
        rows = features[[i for i, k in enumerate(kinds) if k == kind]]
        if len(rows):
            out[slot] = rows.max(axis=0) if how == "max" else rows.mean(axis=0)
    return out.ravel()


def kind_probe_features(model: Any, loader: StudyLoader, keys: Sequence[str], batch_size: int = 8) -> dict[str, Any]:
    """Per study, each read-out of `KIND_PROBES`: `{name: [len(keys), len(REFERENCE_KINDS) * C]}`.

    The stem's output `[S, d, h, w, C]` (forward hook on `patch_embed`) and the last block's normalised patch tokens
    `[S, d, t, C]` (the 4-D output of the tower's final `norm`, which pools them) are reduced per scan by their mean
    or maximum over tokens; packed scans come in study order, so each study's rows follow from its scan count.
    """
    import torch

    from hlip.evaluation.embeddings import pad_studies

    visual, seen = model.visual, {}

    def keep(where: str) -> Callable[..., None]:
        def hook(_module: Any, _inputs: Any, out: Any) -> None:
            if out.dim() >= 4:  # the final norm also runs on the [B, P, C] prefix tokens
                tokens = out.flatten(1, -2)  # [S, tokens, C]
                seen[where] = {"mean": tokens.mean(1).numpy(), "max": tokens.amax(1).numpy()}

        return hook

    handles = [visual.patch_embed.register_forward_hook(keep("stem")), visual.norm.register_forward_hook(keep("last"))]
    rows: dict[str, list[NDArray[np.float32]]] = {name: [] for name in KIND_PROBES}
    try:
        for i in range(0, len(keys), batch_size):
            chunk = keys[i : i + batch_size]
            kinds = [[reference_kind(k, b) for k, b in zip(t["kind"], t["b_value"], strict=True)]
                     for t in (loader.chosen(key) for key in chunk)]  # fmt: skip
            image, mask = pad_studies([loader.load(key) for key in chunk])
            seen.clear()
            with torch.no_grad():
                model.encode_image(image, mask, normalize=True)
            if set(seen) != {"stem", "last"}:
                raise RuntimeError(f"the tower exposed {sorted(seen)} of the stem and last-block tokens (pool: cls?)")
            start = 0
            for study_kinds in kinds:
                end = start + len(study_kinds)
                for name, (where, how) in KIND_PROBES.items():
                    rows[name].append(pool_per_kind(seen[where][how][start:end], study_kinds, how))
                start = end
            if start != len(seen["stem"]["mean"]):
                raise RuntimeError(f"{len(seen['stem']['mean'])} packed scans for {start} loaded ones")
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.stack(values) for name, values in rows.items()}


# -- training and scoring -------------------------------------------------------------------------------------------


def train(variant: str, seed: int, block: dict[str, Any], fit_ingest: Path, fit_labels: Path, out: Path) -> Path:
    """One `run_pretrain` of a variant; returns its exported model folder."""
    from hlip.training.config import PretrainConfig
    from hlip.training.pretrain import run_pretrain

    overrides = dict(block.get("model_overrides") or {})
    overrides["vision"] = {**overrides.get("vision", {}), "levels": VARIANTS[variant]}
    data = {**block["data"], "ingest_dir": str(fit_ingest), "part": "train", "labels_dir": str(fit_labels)}
    params = {**block, "model_overrides": overrides, "data": data, "seed": seed, "out": str(out), "eval_every": 0}
    result = run_pretrain(PretrainConfig.from_params(params))
    if result.model_dir is None:
        raise RuntimeError(f"{variant} seed {seed}: pretrain exported no model")
    return result.model_dir


class Scorer:
    """Zero-shot 5-class probabilities of studies under one trained model."""

    def __init__(self, model_dir: Path) -> None:
        import torch

        from hlip.evaluation.embeddings import embed_texts
        from hlip.evaluation.prompts import load_prompt_set
        from hlip.evaluation.zero_shot import ensemble_embedding
        from hlip.models.export import load_model
        from hlip.models.factory import create_tokenizer

        self.device = torch.device("cpu")
        self.model = load_model(model_dir).eval()
        tokenizer = create_tokenizer(self.model.cfg)
        prompts = load_prompt_set(PROMPTS)

        def encode(texts: Sequence[str]) -> np.ndarray:
            return embed_texts(self.model, tokenizer, self.device, texts)

        self.text = np.stack([ensemble_embedding(encode, prompts, p) for p in prompts.class_phrasings(CLASSES)])
        self.scale = float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    def embed(self, volumes: Sequence[NDArray[np.float32]], batch_size: int = 8) -> NDArray[np.float32]:
        """`[N, E]` normalised study embeddings of studies `[N_i, D, H, W]`."""
        from hlip.evaluation.embeddings import embed_volume_batches

        batches = [list(volumes[i : i + batch_size]) for i in range(0, len(volumes), batch_size)]
        return embed_volume_batches(self.model, self.device, batches)

    def zero_shot(self, image: NDArray[np.float32]) -> NDArray[np.float64]:
        """`[N, 5]` zero-shot class probabilities of study embeddings `[N, E]`."""
        from hlip.evaluation.zero_shot import multiclass_scores

        return np.asarray(multiclass_scores(image, self.text, self.scale), dtype=np.float64)

    def embed_studies(self, loader: StudyLoader, keys: Sequence[str], chunk: int = 64) -> NDArray[np.float32]:
        """`[N, E]` embeddings of studies read `chunk` at a time (a whole training part would not fit in memory)."""
        parts = [self.embed([loader.load(k) for k in keys[i : i + chunk]]) for i in range(0, len(keys), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def probabilities(self, volumes: Sequence[NDArray[np.float32]]) -> NDArray[np.float64]:
        """`[N, 5]` zero-shot class probabilities of studies `[N_i, D, H, W]`."""
        return self.zero_shot(self.embed(volumes))


def probe_probabilities(
    fit_image: NDArray[np.float32], y_fit: NDArray[np.int64], test_image: NDArray[np.float32], config: EvaluateConfig
) -> NDArray[np.float64]:
    """`[len(test_image), 5]` probabilities of a linear probe fit on `(fit_image, y_fit)` with `evaluate`'s
    settings: on the benchmark's validation studies as `evaluate` does, or on the training studies."""
    from hlip.evaluation.linear_probe import probe_scores

    result = probe_scores(fit_image, y_fit, test_image, "multiclass", config.probe_cs, config.probe_folds, config.seed)
    return np.asarray(result.scores, dtype=np.float64)


def one_hot_classes(labels: Sequence[str]) -> NDArray[np.int64]:
    """`[N, 5]` 0/1 rows of class names, in `CLASSES` order."""
    return np.array([[int(label == c) for c in CLASSES] for label in labels], dtype=np.int64).reshape(-1, len(CLASSES))


def pair_auc(y: NDArray[np.int64], score: NDArray[np.float64]) -> float:
    return float(auc_per_label(y[:, None], score[:, None])[0]) if 0 < y.sum() < len(y) else float("nan")


def ci_text(value: float, ci: tuple[float, float]) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if np.isfinite(ci[0]) else f"{value:.3f}"


# -- the tables -----------------------------------------------------------------------------------------------------


def class_table(y: NDArray[np.int64], probs: dict[str, list[NDArray[np.float64]]], n_boot: int) -> list[str]:
    """Per-class AUC per variant (seed mean, bootstrap CI) and the paired macro-AUC difference to the first row."""
    first = next(iter(probs))

    def stat(rows: NDArray[np.int64]) -> dict[str, float]:
        out: dict[str, float] = {}
        for v, seeds in probs.items():
            per_seed = np.stack([auc_per_label(y[rows], p[rows]) for p in seeds])  # [S, C]
            for c, name in enumerate(CLASSES):
                out[f"{v}/{name}"] = float(np.nanmean(per_seed[:, c]))
            out[f"{v}/macro"] = float(np.nanmean([macro(a) for a in per_seed]))
        for v in probs:
            out[f"{v}/delta"] = out[f"{v}/macro"] - out[f"{first}/macro"]
        return out

    point, cis = stat(np.arange(len(y))), bootstrap_ci(stat, len(y), n_boot)
    head = "| variant | " + " | ".join(CLASSES) + f" | macro | per seed | macro - {first} |"
    lines = [head, "|---" * (len(CLASSES) + 4) + "|"]
    for v, seeds in probs.items():
        cells = [ci_text(point[f"{v}/{c}"], cis[f"{v}/{c}"]) for c in (*CLASSES, "macro")]
        cells.append(", ".join(f"{macro(auc_per_label(y, p)):.3f}" for p in seeds))
        cells.append(ci_text(point[f"{v}/delta"], cis[f"{v}/delta"]))
        lines.append(f"| {v} ({len(seeds)} seeds) | " + " | ".join(cells) + " |")
    return lines


def pair_table(results: dict[str, dict[str, dict[str, Any]]], n_boot: int) -> list[str]:
    """Mimic AUC with both series and with one withheld, per variant (seed mean, bootstrap CI)."""
    lines = ["| task | variant | studies (pos/neg) | AUC, both series | AUC, one withheld | withheld - both |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for task, by_variant in results.items():
        for v, r in by_variant.items():
            y, both, less = r["y"], r["both"], r["withheld"]
            if len(y) == 0:
                lines.append(f"| {task} | {v} | 0 | n/a | n/a | n/a |")
                continue

            def stat(rows: NDArray[np.int64], y: Any = y, both: Any = both, less: Any = less) -> dict[str, float]:
                a = float(np.nanmean([pair_auc(y[rows], s[rows]) for s in both]))
                b = float(np.nanmean([pair_auc(y[rows], s[rows]) for s in less]))
                return {"both": a, "less": b, "delta": b - a}

            point, cis = stat(np.arange(len(y))), bootstrap_ci(stat, len(y), n_boot)
            counts = f"{int(y.sum())}/{int(len(y) - y.sum())}"
            cells = [ci_text(point[k], cis[k]) for k in ("both", "less", "delta")]
            lines.append(f"| {task} | {v} | {counts} | " + " | ".join(cells) + " |")
    return lines


def coverage_table(loader: StudyLoader, studies: Sequence[str], max_scans: int) -> list[str]:
    """How often both series of each pair reach the model, in evaluation and in a training draw."""
    head = "| pair | studies | both ingested | both in eval's first N | P(both in a training draw), mean over those |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for task in PAIRS:
        a, b = task.needs
        has = [s for s in studies if {a, b} <= set(loader.kinds(s))]
        in_eval = sum({a, b} <= set(loader.chosen(s)["kind"]) for s in has)
        draws = [_p_both_drawn(loader.kinds(s), a, b, max_scans) for s in has]
        mean = f"{np.mean(draws):.3f}" if draws else "n/a"
        lines.append(f"| {a}+{b} | {len(studies)} | {len(has)} | {in_eval} | {mean} |")
    return lines


def _p_both_drawn(kinds: Sequence[str], a: str, b: str, max_scans: int) -> float:
    """Chance that a uniformly random subset of `max_scans` scans holds a scan of kind `a` and one of kind `b`."""
    from math import comb

    n, na, nb = len(kinds), kinds.count(a), kinds.count(b)
    k = min(max_scans, n)
    total = comb(n, k)
    no_a, no_b, neither = comb(n - na, k), comb(n - nb, k), comb(n - na - nb, k)
    return 1.0 - (no_a + no_b - neither) / total


# -- recipes and earlier runs ---------------------------------------------------------------------------------------


def apply_settings(block: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """The `pretrain` block with `KEY=VALUE` settings applied (dotted keys, YAML values): a recipe to compare.

    A key may be one the params file leaves at its default (`data.augment.shift`); the result must then parse as
    a `pretrain` block and its model config (`model_overrides` included) must build, so a misspelt key is refused
    instead of silently training the baseline or failing at the first training.
    """
    import copy

    import yaml

    from hlip.config import ConfigError
    from hlip.training.config import PretrainConfig
    from hlip.training.pretrain import resolve_model_config

    out = copy.deepcopy(block)
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set wants KEY=VALUE, got {setting!r}")
        *path, leaf = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"--set {key}: pretrain.{part} is not a mapping in the params")
        node[leaf] = yaml.safe_load(raw)
    try:
        resolve_model_config(PretrainConfig.from_params(out))  # the model's keys too (`model_overrides`)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"--set {' '.join(settings)}: {exc}") from exc
    return out


def merge_baseline(
    path: Path,
    bench_ids: Sequence[str],
    bench_images: str,
    pair_y: dict[str, NDArray[np.int64]],
    tables: dict[str, dict[str, list[NDArray[np.float64]]]],
    pairs: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """Put an earlier run's per-seed scores (`--json` of this harness) first in the tables, as `<variant> (earlier)`.

    `tables` maps the record's keys (`variants`: zero-shot, `probe`, `train_probe`) to this run's scores; a key the
    earlier run did not record stays without its rows. Only a run on the same benchmark test studies and the same
    held-out mimic studies (and, where the record has its fingerprint, the same images) compares pairwise.
    """
    record = json.loads(path.read_text())
    if list(record["benchmark_ids"]) != list(bench_ids):
        raise SystemExit(f"{path}: scored on other benchmark studies; it cannot be compared pairwise")
    earlier_images = record.get("benchmark_images")
    if earlier_images is None:
        logger.warning("%s records no benchmark image fingerprint: study IDs checked, images not", path)
    elif earlier_images != bench_images:
        raise SystemExit(f"{path}: scored on other benchmark images (fingerprint {earlier_images}, this run "
                         f"{bench_images}: a regenerated corpus?); it cannot be compared pairwise")  # fmt: skip
    for name, table in tables.items():
        for v, seeds in record.get(name, {}).items():
            table[f"{v} (earlier)"] = [np.asarray(p, dtype=np.float64) for p in seeds]
    for task, by_variant in record.get("pairs", {}).items():
        for v, r in by_variant.items():
            y = np.asarray(r["y"], dtype=np.int64)
            if task not in pair_y or len(y) != len(pair_y[task]) or (y != pair_y[task]).any():
                raise SystemExit(f"{path}: its {task!r} studies differ from this run's (another --held-out?)")
            pairs[task][f"{v} (earlier)"] = {
                "y": y,
                "both": [np.asarray(x, dtype=np.float64) for x in r["both"]],
                "withheld": [np.asarray(x, dtype=np.float64) for x in r["withheld"]],
            }


# -- main -----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny corpus on the fly, 1 + 1 epochs, 1 seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="train seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--score-model", type=Path, action="append", default=[], metavar="DIR",
                        help="an exported model of the same studies and recipe (outputs/pretrain/model with "
                             "--held-out 0), scored as one more seed of the single variant, not trained")  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--corpus", type=Path, default=Path("data"), help="demo corpus (its ground_truth/)")
    parser.add_argument("--ingest", type=Path, default=Path("outputs/ingest"), help="ingest root (train, benchmark)")
    parser.add_argument("--labels", type=Path, default=Path("outputs/labels"), help="label root (train)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="its pretrain block is the schedule")
    parser.add_argument("--held-out", type=float, default=0.25, help="share of training studies kept for mimics")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--no-train-probe", dest="train_probe", action="store_false",
                        help="skip the probe fit on the training studies (one embedding pass per model)")  # fmt: skip
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the reference without a deep model (intensity statistics per kind)")  # fmt: skip
    parser.add_argument("--kind-probes", action="store_true",
                        help="also probe each scan's stem and last-block features pooled per sequence kind "
                             "(two more passes over the studies per model)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="where runs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe change in the pretrain block, e.g. data.text.single_sentence_prob=0.5",
    )
    parser.add_argument("--baseline", type=Path, default=None,
                        help="an earlier --json of this harness, shown first and compared pairwise")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # medspacy's rule compiler warns once per pattern on the root logger
        handler.addFilter(lambda r: "is not a eligible syntax" not in r.getMessage())
    for noisy in ("pydicom", "hlip.data", "hlip.training", "hlip.models", "demo_corpus", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_ablation_"))
    start = time.perf_counter()
    block = apply_settings(load_params(args.params, "pretrain"), args.settings)
    recipe = f" [{', '.join(args.settings)}]" if args.settings else ""
    if args.smoke:
        args.seeds, args.n_boot, args.held_out = 1, 200, 0.5
        block = {
            **block,
            "warmup": {**block["warmup"], "epochs": 1},
            "contrastive": {**block["contrastive"], "epochs": 1},
        }
        # 40 benchmark studies: the probe's cross-validation needs 2+ validation studies of every class
        args.corpus, args.ingest, args.labels = make_smoke_data(work, n_train=24, n_benchmark=40)
    if args.score_model and len(args.variants) != 1:
        parser.error("--score-model needs exactly one --variants (the one the given models were trained as)")
    key, hash_length = HashKey.from_env("HLIP_DEID_KEY"), 20
    train_truth, bench_truth = truth_by_key(args.corpus, key, hash_length)
    max_scans = int(block["data"].get("scans", {}).get("max_scans", 8))
    train_loader = StudyLoader(args.ingest / "train", max_scans)
    bench_loader = StudyLoader(args.ingest / "benchmark", max_scans)
    drop = held_out(sorted(train_loader.scans), args.held_out)
    fit_ingest, fit_labels = fit_part(args.ingest, args.labels, drop, work)

    all_ids = [k for k in sorted(bench_loader.scans) if k in bench_truth.index]
    y_all = one_hot_classes([bench_truth[k] for k in all_ids])
    eval_config = EvaluateParams.load(args.params).config  # `evaluate`'s settings, resolved as the stage does
    val, test = validation_split(y_all, eval_config.val_fraction, eval_config.seed)  # the probe fits on val
    bench_ids, y_bench = [all_ids[i] for i in test], y_all[test]
    bench_images = images_fingerprint(args.ingest / "benchmark")
    bench_volumes = [bench_loader.load(k) for k in all_ids]

    # the probe on what the tower learnt: every study the runs train on that has a ground-truth class
    fit_ids = [k for k in sorted(train_loader.scans) if k not in drop and k in train_truth.index]
    fit_class = train_truth.loc[fit_ids, "label"].astype(str)
    unknown = sorted(set(fit_class) - set(CLASSES))
    if unknown:
        raise SystemExit(f"training ground truth has classes {unknown} outside {CLASSES}")
    y_fit = one_hot_classes(list(fit_class))

    pair_sets = {}
    for task in PAIRS:
        truth = train_truth.loc[[k for k in sorted(drop) if k in train_truth.index]]
        pos, neg = task.positive(truth), task.negative(truth)
        keys = [k for k in truth.index[pos | neg] if set(task.needs) <= set(train_loader.kinds(k))]
        y = np.array([int(pos[k]) for k in keys], dtype=np.int64)
        withheld = frozenset({task.withhold})
        pair_sets[task.name] = (keys, y, [train_loader.load(k) for k in keys],
                                [train_loader.load(k, withheld) for k in keys])  # fmt: skip

    reference: dict[str, list[NDArray[np.float64]]] = {}
    if args.reference:  # what simple statistics of the same scans tell, fit on the same training studies
        fit_kind, fit_any = intensity_features(train_loader, fit_ids)
        bench_kind, bench_any = intensity_features(bench_loader, bench_ids)
        reference["intensity statistics per scan kind"] = [reference_probabilities(fit_kind, y_fit, bench_kind,
                                                                                   eval_config)]  # fmt: skip
        reference["intensity statistics, kind unknown"] = [reference_probabilities(fit_any, y_fit, bench_any,
                                                                                   eval_config)]  # fmt: skip
        logger.info("reference (no deep model): per scan kind %.3f, kind unknown %.3f",
                    *(macro(auc_per_label(y_bench, p[0])) for p in reference.values()))  # fmt: skip

    probs: dict[str, list[NDArray[np.float64]]] = {}
    probe: dict[str, list[NDArray[np.float64]]] = {}
    train_probe: dict[str, list[NDArray[np.float64]]] = {}
    kind_probes: dict[str, list[NDArray[np.float64]]] = {}
    pairs: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in PAIRS}
    tables = {"variants": probs, "probe": probe, "train_probe": train_probe}  # the record's keys (--json, --baseline)
    if args.baseline:
        pair_y = {name: y for name, (_, y, _, _) in pair_sets.items()}
        merge_baseline(args.baseline, bench_ids, bench_images, pair_y, tables, pairs)
    for variant in args.variants:
        name = variant + recipe
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        for job in [*seeds, *args.score_model]:  # a seed to train, or an exported model to score as it is
            if isinstance(job, Path):
                model_dir = job
            else:
                model_dir = train(variant, job, block, fit_ingest, fit_labels, work / "runs" / f"{variant}-s{job}")
            scorer = Scorer(model_dir)
            image = scorer.embed(bench_volumes)
            probs.setdefault(name, []).append(scorer.zero_shot(image[test]))
            probe.setdefault(name, []).append(probe_probabilities(image[val], y_all[val], image[test], eval_config))
            if args.train_probe:
                fit_image = scorer.embed_studies(train_loader, fit_ids)
                train_probe.setdefault(name, []).append(probe_probabilities(fit_image, y_fit, image[test], eval_config))
            logger.info(
                "%s, %s: zero-shot macro AUC %.3f, probe %.3f (%.0f s since start)",
                name,
                f"scored {job}" if isinstance(job, Path) else f"seed {job}",
                macro(auc_per_label(y_bench, probs[name][-1])),
                macro(auc_per_label(y_bench, probe[name][-1])),
                time.perf_counter() - start,
            )
            if args.train_probe:
                logger.info("%s: probe fit on the training studies %.3f", name,
                            macro(auc_per_label(y_bench, train_probe[name][-1])))  # fmt: skip
            if args.kind_probes:
                fit_feats = kind_probe_features(scorer.model, train_loader, fit_ids)
                test_feats = kind_probe_features(scorer.model, bench_loader, bench_ids)
                for probe_name in KIND_PROBES:
                    p = reference_probabilities(fit_feats[probe_name].astype(np.float64), y_fit,
                                                test_feats[probe_name].astype(np.float64), eval_config)  # fmt: skip
                    kind_probes.setdefault(f"{name}: {probe_name}", []).append(p)
                    logger.info("%s: %s %.3f", name, probe_name, macro(auc_per_label(y_bench, p)))
            for task in PAIRS:
                keys, y, both, less = pair_sets[task.name]
                r = pairs[task.name].setdefault(name, {"y": y, "both": [], "withheld": []})
                if keys:
                    cols = [CLASSES.index(c) for c in task.score]
                    r["both"].append(scorer.probabilities(both)[:, cols].sum(1))
                    r["withheld"].append(scorer.probabilities(less)[:, cols].sum(1))

    n_seeds = args.seeds + len(args.score_model)
    print(f"\n## Attention ablation ({'smoke' if args.smoke else 'full'}; {n_seeds} seed(s) per variant; "
          f"{len(train_loader.scans) - len(drop)} training studies, {len(drop)} held out; "
          f"{len(bench_ids)} benchmark test studies; {time.perf_counter() - start:.0f} s)\n")  # fmt: skip
    sections = [  # (heading, scores); a table whose scores were not computed is left out
        ("Zero-shot AUC per class on the benchmark's test studies (seed mean [95% bootstrap CI over studies]):\n",
         probs),
        (f"\nLinear probe AUC per class on the same test studies (fit on the benchmark's {len(val)} validation "
         "studies, as `evaluate` does):\n", probe),
        (f"\nLinear probe AUC per class on the same test studies, fit on the {len(fit_ids)} training studies' "
         "embeddings and ground-truth classes (what the tower learnt, whatever the prompts):\n", train_probe),
        ("\nReference without a deep model: first-order intensity statistics of the same scans "
         f"(`scan_statistics`), a linear probe fit on the same {len(fit_ids)} training studies' ground truth:\n",
         reference),
        (f"\nEach scan's features pooled per sequence kind, a linear probe fit on the same {len(fit_ids)} "
         "training studies (standardised as the reference):\n", kind_probes),
    ]  # fmt: skip
    for heading, scores in sections:
        if scores:
            print(heading)
            print("\n".join(class_table(y_bench, scores, args.n_boot)))
    print("\nPaired mimic tasks on the held-out training studies (P(class) from the 5-way prompts):\n")
    print("\n".join(pair_table(pairs, args.n_boot)))
    print(f"\nPair coverage on the held-out training studies (max_scans {max_scans}):\n")
    print("\n".join(coverage_table(train_loader, sorted(drop), max_scans)))
    if args.json:
        mine = [variant + recipe for variant in args.variants]
        record = {
            "settings": {
                "seeds": args.seeds,
                "first_seed": args.first_seed,
                "scored": [str(m) for m in args.score_model],
                "held_out": args.held_out,
                "set": args.settings,
            },
            **{key: {v: [p.tolist() for p in table[v]] for v in mine if v in table} for key, table in tables.items()},
            "reference": {name: [p.tolist() for p in ps] for name, ps in reference.items()},
            "kind_probes": {name: [p.tolist() for p in ps] for name, ps in kind_probes.items()},
            "benchmark_ids": bench_ids,
            "benchmark_images": bench_images,
            "pairs": {
                t: {v: {k: np.asarray(x).tolist() for k, x in d[v].items()} for v in mine} for t, d in pairs.items()
            },
        }
        args.json.write_text(json.dumps(record))
    print(f"\nruns and models: {work}")


if __name__ == "__main__":
    main()
