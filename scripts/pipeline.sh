#!/usr/bin/env bash
# README command 1 (after `make setup`): make sure the corpus is in place, then run the DVC pipeline.
# `dvc repro` re-runs only what changed, so a second run with nothing changed does no work.
#
# Every stage is a Prefect flow. Without PREFECT_API_URL each stage would start Prefect's temporary server
# (about 6 s a stage); instead one server on 127.0.0.1 is started here, while the corpus step runs, and stopped at
# the end (local_stack/flow_server.py). With PREFECT_API_URL set (your own server, `make stack-up`), that one is used.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # stage commands run `python` from the project venv
flow_server=outputs/pipeline-prefect
own_server=""
if [[ -z "${PREFECT_API_URL:-}" ]]; then
  .venv/bin/python -m local_stack.flow_server start "$flow_server"
  own_server=1
  trap '.venv/bin/python -m local_stack.flow_server stop "$flow_server"' EXIT
fi
scripts/corpus.sh
if [[ -n "$own_server" ]]; then
  if settings=$(.venv/bin/python -m local_stack.flow_server wait "$flow_server"); then
    while IFS='=' read -r key value; do export "$key=$value"; done <<< "$settings"   # PREFECT_API_URL, PREFECT_UI_URL
    echo "pipeline: flows report to the Prefect server at $PREFECT_API_URL (stopped when the pipeline ends)"
  else
    echo "pipeline: the shared Prefect server did not start (log: $flow_server/prefect-server.log);" \
      "each stage starts Prefect's temporary server instead (slower, same results)" >&2
  fi
fi
.venv/bin/dvc repro "$@"
echo
echo "pipeline: done. Outputs are under outputs/; 'dvc metrics show' lists the metrics."
