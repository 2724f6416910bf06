#!/usr/bin/env bash
# Run pytest; exit code 5 ("no tests collected") is a failure with a clear message: a green run that
# tested nothing would be a lie.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests for this selection ($*): treating as a failure" >&2
fi
exit $rc
