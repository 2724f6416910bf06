#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, idempotently:
#   1. Debian packages listed in infra/apt-packages.txt (only those missing; needs root or sudo),
#   2. a virtual environment in .venv with the locked Python packages (requirements.lock),
#   3. the project itself, editable.
# A second run with nothing changed does no work (a stamp records the hash of the lock and pyproject).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
# torch 2.13.0 (CPU) comes from a local wheel folder; pip's config names it, uv needs it explicitly.
FIND_LINKS=${HLIP_FIND_LINKS:-$( (pip config get global.find-links 2>/dev/null || echo /opt/wheels) | head -n1)}

install_apt_packages() {
  local missing=()
  while read -r pkg probe; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then missing+=("$pkg"); fi
  done < infra/apt-packages.txt
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  local SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# shellcheck source=scripts/heartbeat.sh
source "$(dirname "${BASH_SOURCE[0]}")/heartbeat.sh"

install_python_packages() {
  local stamp="$VENV/.hlip-installed"
  local want
  want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "setup: creating the virtual environment in $VENV (1-2 minutes)"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.8
  with_heartbeat setup "installing the locked packages (requirements.lock)" \
    "$VENV/bin/uv" pip sync -q requirements.lock --find-links "$FIND_LINKS" --python "$VENV/bin/python"
  "$VENV/bin/uv" pip install -q --no-deps -e . --python "$VENV/bin/python"
  warm_bytecode
  echo "$want" > "$stamp"
}

# Byte code of what the pipeline imports, written once here: the stages' modules and the libraries they import
# inside functions (validation's great_expectations, labelling's medspacy, the text tower's BERT, evaluation's
# scikit-learn and matplotlib, registration's pyfunc). Compiling all ~28K files of the venv instead
# (`uv pip sync --compile-bytecode`) made every fresh setup compile the three quarters (21K files) nothing
# imports. Anything else a process imports is cached by Python on first use when run through make: the Makefile exports
# PYTHONDONTWRITEBYTECODE empty, so an environment that sets it (many container images do) does not make every
# process compile its imports again.
BYTECODE_MODULES=(
  flows.ingest flows.validate flows.label flows.pretrain flows.evaluate flows.register flows.sweep
  hlip.cli.main demo_corpus.corpus hlip.stages.training_process
  great_expectations medspacy transformers.models.bert.modeling_bert safetensors.torch
  sklearn.linear_model sklearn.metrics sklearn.model_selection matplotlib.pyplot matplotlib.backends.backend_agg
  mlflow.pyfunc mlflow.models.signature
)
warm_bytecode() {
  echo "setup: compiling the byte code of the pipeline's imports"
  PYTHONDONTWRITEBYTECODE= with_heartbeat setup "compiling the byte code of the pipeline's imports" \
    "$VENV/bin/python" -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' \
    "${BYTECODE_MODULES[@]}"
}

install_apt_packages
install_python_packages
