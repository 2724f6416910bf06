#!/usr/bin/env bash
# Start the local production-like stack (PostgreSQL, SeaweedFS S3, MLflow, Prefect server + worker) on
# 127.0.0.1, data and generated secrets under outputs/stack/. Idempotent; creates the S3 buckets (an upload never
# does: a misspelt bucket is an error). Then: source outputs/stack/stack.env
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m local_stack up --root "${HLIP_STACK_DIR:-outputs/stack}" "$@"
