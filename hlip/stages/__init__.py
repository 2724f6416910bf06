"""The stage layer: one Prefect-free module per pipeline stage, between the library and the orchestrator.

Each `hlip/stages/<stage>.py` holds one frozen parameters dataclass that reads the stage's `params.yaml` block
(unknown keys rejected, `<Stage>Params.load(path)`) and a `run(params) -> result` that records to MLflow and
writes the stage's metrics file. `dvc.yaml` runs the flows (`python -m flows.<stage>`), the flows and the Prefect
deployments wrap these functions (retries, task mapping, artifacts), so the same word names the stage, its
params block, its module here, its flow and its MLflow experiment.
"""
