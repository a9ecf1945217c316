#!/usr/bin/env bash
# Per-kernel GPU times of one profiled region (bench/profile.ts) under Nsight Compute, clocks left
# alone (METHOD.md) and caches not flushed (the kernels see the cache state of the real run).
# Prints the time per kernel name: count, total and mean microseconds, share of the region.
#   bash bench/profile_gpu.sh decode [--context 256 --steps 2]
#   bash bench/profile_gpu.sh prefill [--batch 8 --seq 2048]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
mode=$1
csv="$out/profile-$mode.csv"
ncu --profile-from-start off --clock-control none --cache-control none --metrics gpu__time_duration.sum \
  --csv --page raw node dist/bench/profile.js "$@" > "$csv" 2> "$out/profile-$mode.err" || { tail -20 "$out/profile-$mode.err"; exit 1; }
python3 - "$csv" <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
head = rows[0]
name_i, t_i = head.index('Kernel Name'), head.index('gpu__time_duration.sum')
unit = rows[1][t_i]
scales = {'nsecond': 1e-3, 'ns': 1e-3, 'usecond': 1.0, 'us': 1.0, 'msecond': 1e3, 'ms': 1e3}
if unit not in scales: sys.exit(f'profile_gpu.sh: unknown time unit {unit!r} in {sys.argv[1]}')
scale = scales[unit]
agg = collections.OrderedDict()
for r in rows[2:]:
    name = r[name_i].split('(')[0][:90]
    c, t = agg.get(name, (0, 0.0))
    agg[name] = (c + 1, t + float(r[t_i].replace(',', '')) * scale)
total = sum(t for _, t in agg.values())
print(f'{len(rows) - 2} kernels, {total:.1f} us in all')
for name, (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f'{c:6d} {t:10.1f} us {t / c:8.2f} us/each {100 * t / total:5.1f}%  {name}')
PY
