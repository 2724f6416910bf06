"""Training in a child process, so the pretrain stage outlives its death.

The pretrain stage (`hlip.stages.pretrain.train`, a Prefect task in the flow) writes ``JOB/job.json`` (the resolved
`pretrain` block and the ingest preprocessing spec), starts ``python -m hlip.stages.training_process JOB`` (under
``torchrun`` when it asks for more than one process) and waits. The child opens the stage's MLflow run, records its
id in ``JOB/run.json``, trains with `run_pretrain` (which resumes from the newest checkpoint in `pretrain.out`),
logs the outputs and writes ``JOB/result.json``.

When the child dies instead (``kill -9``, the OOM killer, a lost node), the task sees its exit status, marks the
attempt's MLflow run FAILED (a killed process cannot), and raises `TrainingProcessError`: Prefect retries the task
and the new child resumes from the last checkpoint. In-process training would have died with the flow.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class TrainingProcessError(RuntimeError):
    """The training process failed or was killed (the message says how); the task's retry resumes it."""


def training_command(job: Path, nproc: int = 1) -> list[str]:
    """The child's command line: this module, under ``torchrun --standalone`` when `nproc` > 1."""
    if nproc > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc)]
        return [sys.executable, *launcher, "-m", __name__, str(job)]
    return [sys.executable, "-m", __name__, str(job)]


def describe_exit(code: int) -> str:
    """``killed by SIGKILL`` for a negative (signal) status, else ``exited with code N``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def run_training_process(block: dict[str, Any], preprocess: dict[str, Any] | None, nproc: int = 1) -> dict[str, Any]:
    """Train `block` (a `pretrain` block) in a child process; return its result (summary, timings, run_id, model_dir).

    Raises:
        TrainingProcessError: The child exited non-zero or was killed; its MLflow run is marked FAILED.
    """
    with tempfile.TemporaryDirectory(prefix="hlip-train-") as tmp:
        job = Path(tmp)
        (job / "job.json").write_text(json.dumps({"pretrain": block, "preprocess": preprocess}, default=str))
        child = subprocess.Popen(training_command(job, nproc))
        try:
            code = child.wait()
        except BaseException:  # the flow run is cancelled or interrupted: stop training too (SIGTERM: run FAILED)
            child.terminate()
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
        if code != 0:
            run_id = _read(job / "run.json").get("run_id")
            if run_id:
                _mark_failed(run_id)
            raise TrainingProcessError(
                f"training process {child.pid} {describe_exit(code)}; a retry resumes from the newest checkpoint "
                f"in {block.get('out')}" + (f" (MLflow run {run_id} marked FAILED)" if run_id else "")
            )
        result = _read(job / "result.json")
        if not result:
            raise TrainingProcessError(f"training process {child.pid} exited 0 without writing its result")
        return result


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _mark_failed(run_id: str) -> None:
    """End the dead child's MLflow run as FAILED (best effort: a tracking outage must not hide the real error)."""
    try:
        from mlflow import MlflowClient

        from hlip.tracking.runs import tracking_uri

        MlflowClient(tracking_uri()).set_terminated(run_id, status="FAILED")
    except Exception as exc:  # reported, not raised: the training failure is the error that matters
        log.warning("could not mark MLflow run %s FAILED: %s", run_id, exc)


def main(job: Path) -> None:
    """The child: train the job's config, recording the MLflow run id first and the result last (rank 0)."""
    from hlip.tracking.training_log import log_training_outputs, training_run
    from hlip.training.config import PretrainConfig
    from hlip.training.pretrain import run_pretrain

    spec = json.loads((job / "job.json").read_text())
    config = PretrainConfig.from_params(spec["pretrain"])
    main_rank = os.environ.get("RANK", "0") == "0"
    with training_run(config) if main_rank else nullcontext() as logger:
        if logger is not None:
            (job / "run.json").write_text(json.dumps({"run_id": logger.run_id}))
        result = run_pretrain(config, logger=logger, preprocess=spec["preprocess"])
        if logger is not None and result.model_dir is not None:
            log_training_outputs(logger, result.out)
            record = {"summary": result.summary, "timings": result.timings, "run_id": logger.run_id,
                      "model_dir": str(result.model_dir)}  # fmt: skip
            (job / "result.json").write_text(json.dumps(record, default=str))


def child(argv: list[str]) -> None:
    """The child's entry point (``python -m hlip.stages.training_process JOB``).

    It keeps freed memory in the process (`hlip.allocator`) itself: the setting the stage's process made does not
    survive the exec of a new interpreter, and the training step is where it matters most (the demo's pretrain flow,
    alternating without and with it in one half hour: a warm-up epoch 80.5 -> 68 s, a contrastive epoch 82 -> 72.5 s,
    means of two runs each). The portable CPU numerics travel in the environment and need nothing.
    """
    from hlip.allocator import retain_freed_memory

    retain_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(Path(argv[1]))


if __name__ == "__main__":
    child(sys.argv)
