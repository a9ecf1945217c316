#!/usr/bin/env bash
# Runs every benchmark on the GPU machine, each against its PyTorch reference in the same run, and
# leaves JSON per benchmark in ${OUT:-bench/out}. Needs the addon built and dist/ compiled.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
status=0
for b in ${AERIE_BENCHES:-gemm attention membw adamw prefill decode}; do
  js=dist/bench/$b.js
  if [[ ! -f $js ]]; then echo "bench: $js missing (run npm run build:ts)" >&2; status=1; continue; fi
  echo "== $b"
  node "$js" --out "$out/$b.json" || status=1
done
exit $status
