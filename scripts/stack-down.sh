#!/usr/bin/env bash
# Stop exactly the processes scripts/stack-up.sh started (from their pidfiles); data and secrets are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m local_stack down --root "${HLIP_STACK_DIR:-outputs/stack}" "$@"
