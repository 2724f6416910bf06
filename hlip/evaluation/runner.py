"""`run_evaluation`: one model on one benchmark -> zero-shot, linear probe and retrieval metrics, plots, summary.

Outputs under `out_dir`:
- `metrics.json`: flat keys for DVC / MLflow (`zero_shot.macro_auc`, `zero_shot.macro_auc_ci_low`, ...,
  `linear_probe.*`, `retrieval.*`) plus `protocol`, `model_id`, `benchmark`, `prompts`;
- `per_label.csv` (method, label, auc + CI, threshold, balanced accuracy, F1, ...), `roc.csv`
  (method, label, fpr, tpr, threshold), `retrieval.csv` (direction, k, recall), `calibration.csv`,
  `scores.csv` (per study: split and zero-shot scores);
- `plots/*.png`; `summary.md` and `summary.html`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.embeddings import StudyEmbeddings, cached_embeddings
from hlip.evaluation.fingerprint import benchmark_fingerprint
from hlip.evaluation.linear_probe import out_of_fold_scores, probe_scores
from hlip.evaluation.metrics import slug
from hlip.evaluation.model_handle import ModelHandle
from hlip.evaluation.plots import plot_recall_curves
from hlip.evaluation.prompts import load_prompt_set
from hlip.evaluation.retrieval import ctclip_map_at_k, mean_average_precision, recall_at_k, usable_ks
from hlip.evaluation.scoring import HEADLINE, ScoredMethod, score_method
from hlip.evaluation.summary import Section, fmt, write_summary
from hlip.evaluation.text_cache import PromptEncoder
from hlip.evaluation.thresholds import choose_thresholds, validation_split
from hlip.evaluation.zero_shot import zero_shot_scores

if TYPE_CHECKING:
    from hlip.evaluation.benchmarks.base import Benchmark

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """What `run_evaluation` produced.

    Attributes:
        metrics: The flat metrics (also in `out_dir/metrics.json`); numbers only.
        facts: Identity of the run: model id, benchmark, protocol, prompt set and version, fingerprints.
        out_dir: Output folder.
        files: Written files by role (`metrics`, `summary_md`, `summary_html`, `per_label`, `roc`, ...).
        plots: Written PNGs.
        embeddings_cached: Whether the study embeddings came from the cache.
        seconds: Wall time of the evaluation.
    """

    metrics: dict[str, float]
    facts: dict[str, str]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    embeddings_cached: bool = False
    seconds: float = 0.0


def label_matrix(benchmark: Benchmark, ids: np.ndarray) -> np.ndarray:
    """The benchmark's 0/1 labels `[N, C]` in `ids` order and `classes` column order, checked."""
    labels = benchmark.labels()
    classes = list(benchmark.classes)
    missing_cols = [c for c in classes if c not in labels.columns]
    missing_rows = [i for i in ids if i not in labels.index]
    if missing_cols or missing_rows:
        raise ValueError(
            f"benchmark {benchmark.name!r}: labels lack classes {missing_cols} / studies {missing_rows[:5]}"
        )
    y = labels.loc[list(ids), classes].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"benchmark {benchmark.name!r}: labels must be 0/1")
    if benchmark.task == "multiclass" and not (y.sum(1) == 1).all():
        raise ValueError(f"benchmark {benchmark.name!r} is multiclass but some studies have != 1 positive class")
    return y.astype(int)


def run_evaluation(
    model_dir: str | Path,
    benchmark: Benchmark,
    config: EvaluateConfig,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
) -> EvaluationResult:
    """Evaluate the exported model in `model_dir` on `benchmark` and write every output into `out_dir`.

    Args:
        model_dir: Exported model folder (`model.safetensors` + `config.json`).
        benchmark: The benchmark adapter.
        config: Evaluation settings (protocol, prompts, bootstrap, probe, ...).
        out_dir: Output folder (created).
        cache_dir: Embedding cache folder; None disables caching.
    """
    start = time.perf_counter()
    out_dir, plot_dir = Path(out_dir), Path(out_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else None
    handle = ModelHandle(model_dir, config.device)
    embeddings, from_cache = cached_embeddings(handle, benchmark, cache, config.batch_size)
    y = label_matrix(benchmark, embeddings.study_ids)
    classes, task = list(benchmark.classes), benchmark.task
    prompt_set = load_prompt_set(config.prompts or benchmark.prompts).with_templates(config.templates)

    val_idx, test_idx = _split(benchmark, embeddings.study_ids, y, config)
    eval_idx = np.arange(len(y)) if config.peers_protocol else test_idx
    methods: list[ScoredMethod] = []

    encoder = PromptEncoder(handle, cache)
    zs = zero_shot_scores(embeddings.image, prompt_set, classes, task, encoder, embeddings.logit_scale)
    thr_rows = eval_idx if config.peers_protocol else val_idx
    thresholds = choose_thresholds(y[thr_rows], zs.scores[thr_rows]) if task == "multilabel" else None
    methods.append(
        score_method(
            "zero_shot", y[eval_idx], zs.scores[eval_idx], thresholds, classes, task, config, plot_dir, zs.probabilistic
        )
    )

    if config.linear_probe:
        methods.append(_linear_probe(embeddings, y, val_idx, test_idx, classes, task, config, plot_dir))

    retrieval, curves = _retrieval(embeddings, y, config)
    plots = [p for m in methods for p in m.plots]
    if curves:
        plots.append(plot_recall_curves(curves, plot_dir / "retrieval_recall.png", "report <-> study retrieval"))

    metrics: dict[str, float] = {
        "n_studies": float(len(y)),
        "n_validation": float(len(val_idx)),
        "n_test": float(len(eval_idx)),
        "peers_protocol": float(config.peers_protocol),
    }
    for method in methods:
        metrics.update(method.metrics)
    metrics.update(retrieval)
    facts = {
        "model_id": handle.model_id,
        "model_fingerprint": handle.fingerprint,
        "benchmark": benchmark.name,
        "benchmark_fingerprint": benchmark_fingerprint(benchmark)[:16],
        "task": task,
        "protocol": config.protocol,
        "prompts": f"{prompt_set.name} v{prompt_set.version} ({prompt_set.fingerprint})",
        "templates": " | ".join(prompt_set.templates),
        "zero_shot_rule": zs.rule,
        "bootstrap": f"{config.n_boot} resamples of test studies, {config.ci:.0%} percentile CI, seed {config.seed}",
    }
    files = _write_tables(out_dir, methods, curves, embeddings, val_idx, zs.scores, classes)
    files["metrics"] = out_dir / "metrics.json"
    files["metrics"].write_text(json.dumps({**facts, **_finite(metrics)}, indent=2, sort_keys=True) + "\n")
    files["summary_md"], files["summary_html"] = write_summary(
        out_dir,
        f"Evaluation: {handle.model_id} on {benchmark.name}",
        {
            **facts,
            "studies": str(len(y)),
            "evaluated (test) studies": str(len(eval_idx)),
            "validation studies": str(len(val_idx)),
        },
        _sections(methods, retrieval, config),
        plots,
    )
    seconds = time.perf_counter() - start
    log.info(
        "evaluated %s on %s in %.1fs (embeddings %s)",
        handle.model_id,
        benchmark.name,
        seconds,
        "cached" if from_cache else "computed",
    )
    return EvaluationResult(metrics, facts, out_dir, files, plots, from_cache, seconds)


def _split(
    benchmark: Benchmark, ids: np.ndarray, y: np.ndarray, config: EvaluateConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) row indices: a seeded, stratified split of the benchmark's studies."""
    return validation_split(y, config.val_fraction, config.seed)


def _linear_probe(
    embeddings: StudyEmbeddings,
    y: np.ndarray,
    fit_idx: np.ndarray,
    test_idx: np.ndarray,
    classes: list[str],
    task: str,
    config: EvaluateConfig,
    plot_dir: Path,
) -> ScoredMethod:
    """Probe trained on the validation rows, scored on the test rows; thresholds from out-of-fold scores of the
    training rows ("validation") or from the test rows ("test_set (peers)")."""
    x = embeddings.image
    result = probe_scores(x[fit_idx], y[fit_idx], x[test_idx], task, config.probe_cs, config.probe_folds, config.seed)
    thresholds = None
    if task == "multilabel":
        if config.peers_protocol:
            thresholds = choose_thresholds(y[test_idx], result.scores)
        else:
            oof = out_of_fold_scores(x[fit_idx], y[fit_idx], task, config.probe_cs, config.probe_folds, config.seed)
            thresholds = choose_thresholds(y[fit_idx], oof)
    method = score_method("linear_probe", y[test_idx], result.scores, thresholds, classes, task, config, plot_dir)
    method.metrics["linear_probe.n_train"] = float(len(fit_idx))
    return method


def _retrieval(
    embeddings: StudyEmbeddings, y: np.ndarray, config: EvaluateConfig
) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    """Report<->study Recall@K (studies with a report) and study->study MAP@K (all studies)."""
    metrics: dict[str, float] = {}
    curves: dict[str, dict[int, float]] = {}
    paired = np.flatnonzero(embeddings.has_report)
    if len(paired) >= 2:
        ks = usable_ks(config.retrieval_ks, len(paired))
        image, report = embeddings.image[paired], embeddings.report[paired]
        curves["report_to_study"] = recall_at_k(report, image, ks)
        curves["study_to_report"] = recall_at_k(image, report, ks)
        for direction, values in curves.items():
            metrics.update({f"retrieval.{direction}.recall_at_{k}": v for k, v in values.items()})
        metrics["retrieval.n_pairs"] = float(len(paired))
    if len(y) >= 2:
        ks = usable_ks(config.map_ks, len(y) - 1)
        metrics.update(
            {
                f"retrieval.study_to_study.ctclip_map_at_{k}": v
                for k, v in ctclip_map_at_k(embeddings.image, y, ks).items()
            }
        )
        metrics.update(
            {f"retrieval.study_to_study.{k}": v for k, v in mean_average_precision(embeddings.image, y, ks).items()}
        )
    return metrics, curves


def _write_tables(
    out_dir: Path,
    methods: list[ScoredMethod],
    curves: dict[str, dict[int, float]],
    embeddings: StudyEmbeddings,
    val_idx: np.ndarray,
    zs: np.ndarray,
    classes: list[str],
) -> dict[str, Path]:
    files = {name: out_dir / f"{name}.csv" for name in ("per_label", "roc", "retrieval", "calibration", "scores")}
    pd.concat([m.per_label for m in methods], ignore_index=True).to_csv(files["per_label"], index=False)
    roc = pd.concat([m.roc for m in methods], ignore_index=True)
    roc[["method", "label", "fpr", "tpr", "threshold"]].to_csv(files["roc"], index=False)
    rows = [{"direction": d, "k": k, "recall": r} for d, values in curves.items() for k, r in values.items()]
    pd.DataFrame(rows, columns=["direction", "k", "recall"]).to_csv(files["retrieval"], index=False)
    frames = [m.calibration for m in methods if not m.calibration.empty]
    calibration = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    calibration.to_csv(files["calibration"], index=False)
    split = np.full(len(embeddings.study_ids), "test", dtype=object)
    split[val_idx] = "validation"
    scores = pd.DataFrame(zs, columns=[f"zero_shot.{slug(c)}" for c in classes])
    scores.insert(0, "split", split)
    scores.insert(0, "study_id", embeddings.study_ids)
    scores.to_csv(files["scores"], index=False)
    return files


def _sections(methods: list[ScoredMethod], retrieval: dict[str, float], config: EvaluateConfig) -> list[Section]:
    sections = []
    headline = Section(
        f"Classification ({config.ci:.0%} bootstrap CI; protocol: {config.protocol})", ["method", "n", *HEADLINE]
    )
    for m in methods:
        cells = [
            fmt(
                m.metrics.get(f"{m.name}.{k}", float("nan")),
                (
                    m.metrics.get(f"{m.name}.{k}_ci_low", float("nan")),
                    m.metrics.get(f"{m.name}.{k}_ci_high", float("nan")),
                ),
            )
            for k in HEADLINE
        ]
        headline.rows.append([m.name, str(int(m.metrics[f"{m.name}.n"])), *cells])
    sections.append(headline)
    for m in methods:
        table = Section(f"{m.name}: per label", ["label", "positives", "AUC [CI]", "threshold", "balanced acc.", "F1"])
        for row in m.per_label.to_dict("records"):
            table.rows.append(
                [
                    row["label"],
                    str(int(row["positives"])),
                    fmt(row["auc"], (row["auc_ci_low"], row["auc_ci_high"])),
                    fmt(row.get("threshold", float("nan"))),
                    fmt(row.get("balanced_accuracy", float("nan"))),
                    fmt(row.get("f1", float("nan"))),
                ]
            )
        sections.append(table)
    if retrieval:
        sections.append(
            Section(
                "Retrieval",
                ["metric", "value"],
                [[k.removeprefix("retrieval."), fmt(v)] for k, v in sorted(retrieval.items())],
            )
        )
    return sections


def _finite(metrics: dict[str, float]) -> dict[str, Any]:
    """JSON-safe metrics: NaN becomes null."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()}
