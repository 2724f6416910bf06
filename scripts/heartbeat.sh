# Sourced by the setup and corpus scripts: run a command, printing "<prefix>: <label>, still running (N s)" on
# stderr every HLIP_HEARTBEAT seconds (default 20) while it runs, so that a piped log or CI never waits in silence
# (installers and DVC's hashing of 88K corpus files are quiet for a minute or more). Its exit status is the
# command's, and its stdout stays the command's alone (callers capture it).
HEARTBEAT=${HLIP_HEARTBEAT:-${HLIP_SETUP_HEARTBEAT:-20}}
with_heartbeat() {
  local prefix=$1 label=$2; shift 2
  "$@" &
  local pid=$! start=$SECONDS next=$((SECONDS + HEARTBEAT))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS >= next )) && kill -0 "$pid" 2>/dev/null; then
      echo "$prefix: $label, still running ($((SECONDS - start)) s)" >&2
      next=$((SECONDS + HEARTBEAT))
    fi
  done
  wait "$pid"
}
