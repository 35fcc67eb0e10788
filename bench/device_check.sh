#!/usr/bin/env bash
# GPU check in under 8 minutes: a paper-size ground-truth batch warned (SIGUSR1) and resumed on
# CUDA, a short retrain, the paper campaign's predicted GPU-hours (bench/device_check.py); the
# throughput benchmark on CUDA at paper and default sizes (fast beside reference, fp32 and bf16,
# batched cells); then the batched and bf16 tests on the CPU of the same machine.
# Run from the project root: bash bench/device_check.sh [output folder]
set -euo pipefail
out="${1:-${OUT:-bench/results}}"
mkdir -p "$out"
export DVC_NO_ANALYTICS=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
timeout 200 python bench/device_check.py --device cuda --out "$out" | tee "$out/device_check.md"
timeout 200 python bench/throughput.py --device cuda --seconds 2 --json "$out/throughput_cuda.json" \
  | tee "$out/throughput_cuda.md"
timeout 60 python -m pytest -q tests/test_batched.py
