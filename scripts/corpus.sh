#!/usr/bin/env bash
# Make sure data/ holds the corpus that data.dvc describes, without ever overwriting raw data:
#   - data/ missing or empty: pull it from the DVC remote when data.dvc is cached there, or else regenerate the
#     demo corpus (byte-for-byte deterministic). The demo's data.dvc says `cache: false`: DVC records the corpus's
#     hash and checks it, without a second 1.3 GB copy in .dvc/cache (the code regenerates the same bytes; a test
#     checks it). A team's own export, `dvc add`-ed without that line, is cached and pushed as usual;
#   - data/ present and matching data.dvc: nothing to do;
#   - data/ present but different (a user's own export not yet `dvc add`-ed, or edited files): report and stop
#     short of touching it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# shellcheck source=scripts/heartbeat.sh
source scripts/heartbeat.sh

if [[ ! -f data.dvc ]]; then
  echo "corpus: data.dvc is missing; generate with '$BIN/hlip demo corpus --out data' then 'dvc add data'" >&2
  exit 1
fi

if [[ ! -d data || -z "$(ls -A data 2>/dev/null)" ]]; then
  # a pull of an uncached output (the demo's) "succeeds" without writing anything: check what it left
  if "$BIN/dvc" pull -q data.dvc 2>/dev/null && [[ -n "$(ls -A data 2>/dev/null)" ]]; then
    echo "corpus: pulled data/ from the DVC remote"
  else
    echo "corpus: generating the demo corpus into data/ (deterministic; 4-7 minutes on 2 cores, a progress line every 30 s)"
    "$BIN/hlip" demo corpus --out data
  fi
fi

echo "corpus: checking data/ against data.dvc (DVC hashes every file the first time: 10-60 s)"
status=$(with_heartbeat corpus "checking data/ against data.dvc" "$BIN/dvc" status data.dvc --json)
if [[ "$status" == "{}" ]]; then
  echo "corpus: data/ matches data.dvc"
  exit 0
fi
# Files match a cached data.dvc (a team's own) but are not yet in the local cache (fresh clone): store them, re-check.
if [[ "$status" == *"not in cache"* ]]; then
  echo "corpus: storing data/ in the local DVC cache"
  with_heartbeat corpus "storing data/ in the DVC cache" "$BIN/dvc" commit -q -f data.dvc
  status=$("$BIN/dvc" status data.dvc --json)
  [[ "$status" == "{}" ]] && { echo "corpus: data/ matches data.dvc (cache filled)"; exit 0; }
fi
echo "corpus: data/ differs from data.dvc; leaving it untouched." >&2
echo "        If this is your own export, record it with 'dvc remove data.dvc && dvc add data' (see README: 'Your own data')." >&2
echo "        dvc status: $status" >&2
exit 1
