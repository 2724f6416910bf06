# HLIP pipeline. `make help` lists the targets.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
# Python caches the byte code of what it imports in .venv (setup compiles only the stages' imports; an
# environment that sets this, as many container images do, would make every process compile them again)
export PYTHONDONTWRITEBYTECODE :=

.DEFAULT_GOAL := help
.PHONY: help setup pipeline corpus preview test lint typecheck unit slow lock clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install Debian packages, the virtual environment and the project (idempotent)
	@scripts/setup.sh

pipeline: setup ## README command 1: set up, build or verify the demo corpus, run `dvc repro`
	@scripts/pipeline.sh

corpus: setup ## Generate the demo corpus into data/ if it is missing (never overwrites raw data)
	@scripts/corpus.sh

preview: setup ## Render one mid-slice PNG per series kind of the demo corpus into outputs/preview/
	@$(BIN)/hlip demo preview --corpus data --out outputs/preview

test: setup lint typecheck unit ## README command 2: lint, type check and tests (what CI runs)

lint: ## ruff lint and format check
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: ## mypy on hlip/ and flows/
	@$(BIN)/mypy

unit: ## pytest, default selection: unit and integration tests (not slow, not gpu)
	@scripts/pytest.sh

slow: setup ## Only the slow tests (the full demo corpus, regenerated and checked against data.dvc)
	@scripts/pytest.sh -m "slow"

lock: ## Re-resolve requirements.lock from pyproject.toml
	@$(BIN)/uv pip compile pyproject.toml --extra dev --find-links /opt/wheels --override infra/uv-overrides.txt --python $(BIN)/python -o requirements.lock

clean: ## Remove caches (keeps data/, outputs/ and .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache

.PHONY: stack-up stack-down stack-status
stack-up: setup ## Start the local stack (PostgreSQL, S3, MLflow, Prefect) on 127.0.0.1; then `source outputs/stack/stack.env`
	@scripts/stack-up.sh

stack-down: ## Stop exactly what stack-up started (data and secrets under outputs/stack/ are kept)
	@scripts/stack-down.sh

stack-status: ## Health table of the local stack's components
	@$(BIN)/python -m local_stack status --root $${HLIP_STACK_DIR:-outputs/stack}

.PHONY: serve mlflow-ui
serve: setup ## Serve the Prefect deployments of infra/prefect.yaml (nightly pipeline, data watch, GPU pretrain); needs PREFECT_API_URL (make stack-up)
	@$(BIN)/python -m flows.deploy

mlflow-ui: setup ## Browse the embedded MLflow store (runs, metrics, registered models) on http://127.0.0.1:5000
	@$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///outputs/mlflow/mlflow.db
