#!/usr/bin/env bash
# One call on the GPU machine: build the addon there (sm_90), check our hand-written cuBLASLt/NCCL
# declarations against the real headers, run the GPU tests, then (with --bench) the benchmarks.
# Usage (from the repo root there): source .device/setup.sh && bash test/gpu/device_run.sh [--bench] [vitest filters...]
set -uo pipefail
out=${OUT:-/tmp/aerie-out}
mkdir -p "$out"
bench=0
if [[ ${1:-} == --bench ]]; then bench=1; shift; fi
export CMAKE_BUILD_PARALLEL_LEVEL=16
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
if ! npx cmake-js compile --directory native --out build/native > "$out/build.log" 2>&1; then
  tail -60 "$out/build.log"; echo "device_run: addon build failed"; exit 1
fi
echo "device_run: addon built"
for check in test/gpu/check_*.sh; do
  [[ -f $check ]] && { bash "$check" > "$out/$(basename "$check" .sh).log" 2>&1 && echo "$check: ok" || { echo "$check: FAILED"; tail -20 "$out/$(basename "$check" .sh).log"; }; }
done
AERIE_REQUIRE_GPU=1 npx vitest run --project gpu "$@" > "$out/gpu-tests.log" 2>&1
rc=$?
grep -E "✓|×|↓|Test Files|Tests |FAIL|Error" "$out/gpu-tests.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -v "^ *✓" | tail -80
echo "device_run: gpu tests rc=$rc"
if [[ $bench == 1 ]]; then
  OUT=$out bash bench/run_gpu.sh > "$out/bench.log" 2>&1
  echo "device_run: bench rc=$?"
  tail -60 "$out/bench.log"
fi
exit $rc
