"""Model card of a registered version: Markdown in the spirit of a MONAI bundle's `metadata.json` + README.

It says what goes in (modality, scans per study, voxel grid and spacing, intensity scaling), what comes out, what
the model is for and not for, which data and labeller trained it (the modalities and scan kinds actually present
in its training manifests, counted by `training_composition`, not the configured list), the evaluation it passed
(benchmark, studies, protocol) with its metrics and confidence intervals, and the lineage (code, data, parameters,
MLflow runs). It is logged as a run artifact and set as the
model version's description, so the registry UI shows it next to the version.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hlip.data.config import IngestConfig
    from hlip.data.sampling import ScanPolicy
    from hlip.models.config import ModelConfig

log = logging.getLogger(__name__)

CI_LOW, CI_HIGH = "_ci_low", "_ci_high"


@dataclass(frozen=True)
class CardFacts:
    """Everything a card states.

    Attributes:
        name: Registered model name.
        version: Version number (as a string).
        model: Architecture.
        findings: Output findings (probability columns), in order.
        ingest: Ingest settings that prepare the input (the same in training and serving).
        scan_policy: Scans per study the model sees.
        metrics: Benchmark metrics, flat keys; ``<key>_ci_low`` / ``<key>_ci_high`` hold the 95% CI of ``<key>``.
        lineage: Lineage tags (`git.commit`, `data.dvc_md5`, `params.sha256`, ...).
        run_ids: MLflow run id per stage (pretrain, evaluate, register).
        labeller: How the training labels were made (e.g. "rules (medspacy ConText)").
        notes: Free-form facts from the model's export metadata worth showing.
        trained_on: What the training manifests hold (`training_composition`): `studies`, `scans`, and scan
            counts per `modalities` and `scan_kinds`; empty when the manifests were not available.
        evaluation: The evaluation the version passed: `benchmark`, `fingerprint`, `studies`, `protocol`, ...
    """

    name: str
    version: str
    model: ModelConfig
    findings: Sequence[str]
    ingest: IngestConfig
    scan_policy: ScanPolicy
    metrics: Mapping[str, float]
    lineage: Mapping[str, str]
    run_ids: Mapping[str, str] = field(default_factory=dict)
    labeller: str = "unknown"
    notes: Mapping[str, Any] = field(default_factory=dict)
    trained_on: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)


def training_composition(part_dir: str | Path) -> dict[str, Any]:
    """What a training part's ingest manifests hold: studies, scans, and scan counts per modality and per kind.

    Returns:
        `{"studies": n, "scans": n, "modalities": {"MR": n, ...}, "scan_kinds": {"t1": n, ...}}`, or `{}` when the
        part has no manifests here (e.g. a model registered on another machine than it was trained on).
    """
    from hlip.data import manifest

    part = Path(part_dir)
    try:
        scans, studies = manifest.read_table(part, "scans"), manifest.read_table(part, "studies")
    except (OSError, ValueError) as exc:
        log.warning("training manifests not readable (%s): the card states no training composition", type(exc).__name__)
        return {}
    if not studies:  # a missing table reads as empty: nothing to state
        return {}
    modalities = Counter(str(s.get("modality") or "unknown") for s in scans)
    kinds = Counter(str(s.get("kind") or "unknown") for s in scans)
    return {"studies": len(studies), "scans": len(scans), "modalities": dict(modalities.most_common()),
            "scan_kinds": dict(kinds.most_common())}  # fmt: skip


def evaluation_summary(metrics: Mapping[str, float], benchmark: str | None = None) -> dict[str, Any]:
    """The evaluation a version passed, from evaluate's metrics: the benchmark's fingerprint, how many studies,
    and where the thresholds came from; `{}` when the metrics say nothing of it."""
    out: dict[str, Any] = {}
    if benchmark:
        out["benchmark fingerprint"] = benchmark
    for key, label in (("n_studies", "studies"), ("n_validation", "validation studies"), ("n_test", "test studies")):
        if key in metrics:
            out[label] = int(metrics[key])
    if "peers_protocol" in metrics:
        peers = bool(metrics["peers_protocol"])
        out["thresholds"] = "tuned on the test set (the papers' protocol)" if peers else "chosen on a validation split"
    return out


def training_part(metadata: Mapping[str, Any]) -> Path | None:
    """The folder of the training manifests named in an export's metadata: the local pack it was trained from
    (`pretrain.data.shards`), else the part folder (`pretrain.data.ingest_dir` / `part`); None when neither."""
    data = (metadata.get("pretrain") or {}).get("data") or {}
    shards = str(data.get("shards") or "")
    if shards and not shards.startswith("s3://"):  # a pack holds its part's manifests
        return Path(shards)
    if not data.get("ingest_dir") or not data.get("part"):
        return None
    return Path(str(data["ingest_dir"])) / str(data["part"])


def metric_rows(metrics: Mapping[str, float]) -> list[tuple[str, float, float | None, float | None]]:
    """`(name, value, ci_low, ci_high)` per metric; CI keys are folded into their metric's row."""
    rows = []
    for key in sorted(metrics):
        if key.endswith((CI_LOW, CI_HIGH)):
            continue
        rows.append((key, metrics[key], metrics.get(key + CI_LOW), metrics.get(key + CI_HIGH)))
    return rows


def render_model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    return (
        "\n\n".join(
            [
                f"# {facts.name} v{facts.version}",
                _overview(facts),
                _input_spec(facts),
                _output_spec(facts),
                _intended_use(),
                _training_data(facts),
                _evaluation(facts.evaluation),
                _metrics(facts.metrics),
                _lineage(facts),
            ]
        )
        + "\n"
    )


def _overview(f: CardFacts) -> str:
    v = f.model.vision
    return (
        "HLIP: a 3D ViT with slice/scan/study attention over every scan of a study, aligned with radiology "
        "reports (CLIP-style), used zero-shot with a positive/negative prompt pair per finding.\n\n"
        + _table(
            {
                "modality": _trained_modalities(f),
                "architecture": f"{len(v.levels)} blocks "
                f"({', '.join(v.levels)}), width {v.width}, patches {_x(v.patch_size)}",
                "embedding size": f.model.embed_dim,
                "text tower": _text_source(f.model.text.model_dir),
            }
        )
    )


def _input_spec(f: CardFacts) -> str:
    p = f.ingest.preprocess
    windows = ", ".join(f"{k} L{lvl:g}/W{w:g}" for k, (lvl, w) in p.ct_windows.items())
    rows = {
        "input": "a DICOM study folder (`study_path`) or ingested uint8 `.npy` volumes (`scan_paths`)",
        "series used": f"{', '.join(f.ingest.series.modalities)}; localizers, screenshots, SR and unusable stacks "
        "are quarantined by the ingest code",
        "scans per study": f"{f.scan_policy.mode}, up to {f.scan_policy.max_scans}"
        + (f" of kinds {', '.join(f.scan_policy.kinds)}" if f.scan_policy.kinds else " (any kind)"),
        "voxel grid (D x H x W)": f"{_x(p.size)} ({p.size_mode})",
        "voxel spacing (mm)": _x(p.spacing) if p.spacing else "native",
        "intensity": f"MRI clipped at percentiles {_x(p.mr_percentiles, ', ')} and scaled to [0, 1]; CT windows "
        f"{windows}, one scan each; stored as uint8, fed as uint8 / 255",
        "model grid": f"{_x(f.model.vision.image_size)} (positional embeddings resampled for other grids)",
    }
    return "## Input\n\n" + _table(rows)


def _output_spec(f: CardFacts) -> str:
    return (
        "## Output\n\nOne row per study: a probability in [0, 1] per finding ("
        + ", ".join(f"`{x}`" for x in f.findings)
        + f"), `embedding` (normalised study embedding, {f.model.embed_dim} floats), `n_scans`, `quarantine` "
        "(reason counts of the files ingest set aside) and `error` (empty when the study was read)."
    )


def _intended_use() -> str:
    return (
        "## Intended use and limits\n\n"
        "- **Research only. Not a medical device; not for diagnosis or any clinical decision.**\n"
        "- The demo model is trained and evaluated on a **synthetic** corpus (MNI152 anatomy with simulated "
        "findings); its metrics say nothing about real patients.\n"
        "- Zero-shot probabilities come from a softmax over one prompt pair: they are not calibrated risks.\n"
        "- Findings outside the prompt set, other body parts and other modalities are out of scope."
    )


def _trained_modalities(f: CardFacts) -> str:
    modalities = f.trained_on.get("modalities")
    if modalities:
        return ", ".join(modalities)
    return f"not recorded (ingest accepts {', '.join(f.ingest.series.modalities)})"


def _training_data(f: CardFacts) -> str:
    rows: dict[str, Any] = {"data version (data.dvc md5)": f.lineage.get("data.dvc_md5", "unknown")}
    if f.trained_on:
        rows["studies / scans"] = f"{f.trained_on.get('studies', '?')} / {f.trained_on.get('scans', '?')}"
        rows["modalities (scans)"] = _counts(f.trained_on.get("modalities") or {})
        rows["scan kinds (scans)"] = _counts(f.trained_on.get("scan_kinds") or {})
    else:
        rows["composition"] = "not recorded (the training manifests were not available at registration)"
    rows["labeller"] = f.labeller
    rows.update({str(k): v for k, v in f.notes.items()})
    return "## Training data\n\n" + _table(rows)


def _evaluation(evaluation: Mapping[str, Any]) -> str:
    if not evaluation:
        return "## Evaluation\n\nNo evaluation recorded."
    return "## Evaluation\n\n" + _table({str(k).replace("_", " "): v for k, v in evaluation.items()})


def _counts(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _metrics(metrics: Mapping[str, float]) -> str:
    lines = ["| metric | value | 95% CI |", "|---|---:|---|"]
    for name, value, low, high in metric_rows(metrics):
        ci = f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else "-"
        lines.append(f"| {name} | {value:.4f} | {ci} |")
    return "## Benchmark metrics\n\n" + ("\n".join(lines) if len(lines) > 2 else "No metrics recorded.")


def _lineage(f: CardFacts) -> str:
    rows: dict[str, Any] = dict(sorted(f.lineage.items()))
    rows.update({f"MLflow run ({stage})": run for stage, run in sorted(f.run_ids.items())})
    return "## Lineage\n\n" + _table(rows)


def _text_source(model_dir: str) -> str:
    """The text tower's source without local folder names (`pkg:` specs are kept as they are)."""
    return model_dir if model_dir.startswith("pkg:") else f"local folder `{model_dir.rstrip('/').rsplit('/', 1)[-1]}`"


def _table(rows: Mapping[str, Any]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows.items())])


def _x(values: Sequence[Any], sep: str = " x ") -> str:
    return sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
