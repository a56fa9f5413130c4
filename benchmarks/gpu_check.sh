#!/usr/bin/env bash
# Issue #10's GPU evidence as ONE prepared script: the GPU benchmark (benchmarks/gpu.py), then the
# CUDA-parametrised tests. A bare GPU machine may lack pytest and has no network, and the datasets live
# outside the repository, so prepare both on the CPU machine first, into ignored folders that travel
# with the working tree:
#
#   bash benchmarks/gpu_check.sh --prepare   # copies ptb/ and wikitext-2/ into .gpu-data/ (19 MB) and
#                                            # installs pytest into .gpu-pylib/ (pure Python)
#
# then, on the GPU machine, from the repository root (aimed at under 6 minutes on one H100; not yet timed):
#
#   bash benchmarks/gpu_check.sh             # writes gpu.json, gpu.txt and tests.txt into $OUT
#                                            # (default benchmarks/results/)
#
# The device tool's call carries the two folders: carry [".gpu-data", ".gpu-pylib"].
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

if [[ "${1:-}" == "--prepare" ]]; then
  source_data=${AWDLIB_DATA:-../shared/data}
  mkdir -p .gpu-data
  cp -r "$source_data/ptb" "$source_data/wikitext-2" .gpu-data/
  "$PYTHON" -m pip install --quiet --target .gpu-pylib pytest
  echo "prepared .gpu-data ($(du -sh .gpu-data | cut -f1)) and .gpu-pylib ($(du -sh .gpu-pylib | cut -f1))"
  exit 0
fi

OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export AWDLIB_DATA=${AWDLIB_DATA:-$PWD/.gpu-data}
[[ -d .gpu-pylib ]] && export PYTHONPATH="$PWD/.gpu-pylib${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# 1. the benchmark: its table comes last in gpu.txt
"$PYTHON" benchmarks/gpu.py --json "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.txt"

# 2. every test parametrised over "cuda" (they skip without a GPU elsewhere); -rs lists skips
mapfile -t files < <(grep -l '"cuda"' tests/test_*.py)
"$PYTHON" -m pytest -p no:cacheprovider -rs -k cuda "${files[@]}" 2>&1 | tee "$OUT/tests.txt"

# 3. a demo-scale study on the GPU (issue #18): one run alone, then four runs as four workers sharing
#    the GPU; the runner prints each run's time and the shell the wall time of each step
study() {
  local start=$(date +%s)
  timeout 300 "$PYTHON" -m awdlib experiment ablation --preset ablation-demo --device cuda \
    --results "$OUT/study-$1" "${@:2}" || echo "exit $?"
  echo "wall time ($1): $(( $(date +%s) - start )) s"
}
{ study one --seeds 141 --workers 1 --only AWD-LSTM
  study four --seeds 141 142 --workers 4 --only AWD-LSTM "– weight-dropping"; } 2>&1 | tee "$OUT/study.txt"

