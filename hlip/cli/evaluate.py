"""`hlip evaluate`: evaluate an exported model on a benchmark (zero-shot, linear probe, retrieval).

The command runs the library directly (no Prefect, no MLflow); `python -m flows.evaluate` is the tracked stage.
Heavy imports happen inside the command body so `hlip --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PROTOCOLS = ("validation", "test_set (peers)")


def evaluate(
    benchmark: Annotated[str, typer.Option("--benchmark", help="Registered benchmark name, e.g. demo, ct_rate.")],
    model: Annotated[Path, typer.Option("--model", help="Exported model folder (model.safetensors + config.json).")],
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Benchmark data folder (the adapter's data_root).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/evaluate"),
    protocol: Annotated[
        str, typer.Option("--protocol", help="Threshold protocol: 'validation' or 'test_set (peers)'.")
    ] = "validation",
    prompts: Annotated[str | None, typer.Option("--prompts", help="Prompt set name or YAML path.")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Embedding cache folder.")] = Path(
        "outputs/cache/embeddings"
    ),
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for CIs (0: none).")] = 1000,
    linear_probe: Annotated[bool, typer.Option("--linear-probe/--no-linear-probe", help="Fit a linear probe.")] = True,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Evaluate MODEL on BENCHMARK; writes metrics.json, plots, CSV tables and summary.md/html under OUT."""
    if protocol not in PROTOCOLS:
        typer.echo(f"error: --protocol must be one of {list(PROTOCOLS)}, got {protocol!r}", err=True)
        raise typer.Exit(code=2)
    from hlip.data.contract import PartContractError
    from hlip.evaluation.benchmarks import open_benchmark
    from hlip.evaluation.config import EvaluateConfig
    from hlip.evaluation.runner import run_evaluation

    try:
        config = EvaluateConfig(
            prompts=prompts, protocol=protocol, n_boot=n_boot, linear_probe=linear_probe, device=device
        )
        bench = open_benchmark(benchmark, model, **({"data_root": data_root} if data_root is not None else {}))
        result = run_evaluation(model, bench, config, out, cache_dir)
    except (KeyError, ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        if isinstance(err, PartContractError):
            typer.echo(
                f"hint: ingest the benchmark's DICOM for this model first, e.g. `hlip ingest data/benchmark/dicom "
                f"--reports data/benchmark/reports.csv --out outputs/ingest/benchmark-{model.name} "
                f"--contract-of {model}`, then pass that folder as --data-root",
                err=True,
            )
        raise typer.Exit(code=1) from err
    typer.echo(f"{result.facts['model_id']} on {benchmark} (protocol: {protocol})")
    for key in sorted(result.metrics):
        if key.count(".") == 1 and not key.endswith(("_ci_low", "_ci_high")):
            typer.echo(f"  {key:45s} {result.metrics[key]:.4f}")
    typer.echo(f"wrote {result.files['summary_html']}")
