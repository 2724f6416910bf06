#!/usr/bin/env bash
# README command 1 (after `make setup`): make sure the corpus is in place, then run the DVC pipeline.
# `dvc repro` re-runs only what changed, so a second run with nothing changed does no work.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # stage commands run `python` from the project venv
scripts/corpus.sh
.venv/bin/dvc repro "$@"
echo
echo "pipeline: done. Outputs are under outputs/; 'dvc metrics show' lists the metrics."
