/**
 * GEMM benchmark: Aerie's matmul (cuBLASLt) on the Llama-3.1-8B projection shapes against
 * torch.matmul(x, w.t()) measured in the same run by bench/torch_gemm.py.
 * Shapes: M = 8192 tokens; qkv N 6144 K 4096, o N 4096 K 4096, gate_up N 28672 K 4096,
 * down N 4096 K 14336. bf16 in and out, no bias, y = x @ W^T (W is [N, K], transB).
 * Times: CUDA events around each call, median of --iters after --warmup calls. The calls are queued
 * back to back (one host sync at the end) so host launch latency is not timed; each call rotates
 * through --sets different (x, W) pairs so no operand stays hot in L2. FLOPs: 2 M N K.
 *
 *   node dist/bench/gemm.js [--m 8192] [--iters 30] [--warmup 10] [--sets 3] [--no-torch] [--out PATH]
 */
import { runTorchReference } from './harness.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../src/runtime/tensor.js';
import { CudaEvent, cudaAvailable, cudaUnavailableReason, deviceName, emptyCache, synchronize } from '../src/runtime/cuda.js';
import { matmul } from '../src/runtime/ops/matmul.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  m: number;
  iters: number;
  warmup: number;
  sets: number;
  torch: boolean;
  out?: string;
}

export const SHAPES = [
  { name: 'qkv', n: 6144, k: 4096 },
  { name: 'o', n: 4096, k: 4096 },
  { name: 'gate_up', n: 28672, k: 4096 },
  { name: 'down', n: 4096, k: 14336 },
] as const;

const program = benchCommand('gemm', "Aerie's matmul (cuBLASLt) on the Llama-3.1-8B projection shapes against torch.matmul", { iters: 30, warmup: 10 })
  .option('--m <n>', 'rows (tokens) of every product', intAtLeast('--m', 1), 8192)
  .option('--sets <n>', 'interleaved sets of runs, the best kept', intAtLeast('--sets', 1), 3);

const DEVICE = 'cuda:0' as const;

/**
 * Median milliseconds of `iters` calls fn(i), each between two CUDA events, after `warmup` calls.
 * All calls are queued before the single synchronisation, so each interval is GPU time only.
 */
function timeMs(fn: (i: number) => void, warmup: number, iters: number): { median: number; all: number[] } {
  for (let i = 0; i < warmup; i++) fn(i);
  synchronize(DEVICE);
  const starts = Array.from({ length: iters }, () => new CudaEvent(DEVICE));
  const ends = Array.from({ length: iters }, () => new CudaEvent(DEVICE));
  for (let i = 0; i < iters; i++) {
    starts[i].record();
    fn(i);
    ends[i].record();
  }
  ends[iters - 1].synchronize();
  const all = ends.map((e, i) => e.elapsedMsSince(starts[i]));
  for (const e of [...starts, ...ends]) e.destroy();
  const sorted = [...all].sort((x, y) => x - y);
  return { median: sorted[Math.floor(sorted.length / 2)], all };
}

/** A bf16 tensor of uniform values in [-1, 1), written from a 1M-element random pattern (rotated per tensor). */
let patternStart = 0;
const PATTERN = (() => {
  let s = 12345;
  const bits = new Uint16Array(1 << 20);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < bits.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    f[0] = s / 2147483648 - 1;
    bits[i] = u[0] >>> 16; // truncation to bf16 is fine for benchmark data
  }
  return bits;
})();
function randomBf16(shape: number[]): Tensor {
  const t = Tensor.empty(shape, 'bfloat16', DEVICE);
  const total = t.numel;
  const offset = (patternStart = (patternStart + 7919) % PATTERN.length);
  const chunk = new Uint16Array(PATTERN.length);
  chunk.set(PATTERN.subarray(offset));
  chunk.set(PATTERN.subarray(0, offset), PATTERN.length - offset);
  for (let done = 0; done < total; done += chunk.length) {
    const n = Math.min(chunk.length, total - done);
    t.storage.write(chunk.subarray(0, n), done * 2);
  }
  return t;
}

interface TorchShape {
  name: string;
  median_ms: number;
  tflops: number;
}
interface TorchResult {
  torch: string;
  device: string;
  results: TorchShape[];
}

function runTorch(a: Args): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_gemm.py', ['--m', a.m, '--iters', a.iters, '--warmup', a.warmup, '--sets', a.sets]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`gemm bench needs a GPU: ${cudaUnavailableReason()}`);
  const tflops = (flops: number, ms: number) => flops / (ms * 1e-3) / 1e12;

  const aerie = SHAPES.map((s) => {
    const xs = Array.from({ length: a.sets }, () => randomBf16([a.m, s.k]));
    const ws = Array.from({ length: a.sets }, () => randomBf16([s.n, s.k]));
    const out = Tensor.empty([a.m, s.n], 'bfloat16', DEVICE);
    const t = timeMs((i) => void matmul(xs[i % a.sets], ws[i % a.sets], { transB: true, out }), a.warmup, a.iters);
    for (const x of [...xs, ...ws, out]) x.dispose();
    synchronize(DEVICE);
    const flops = 2 * a.m * s.n * s.k;
    return { ...s, m: a.m, flops, median_ms: t.median, tflops: tflops(flops, t.median), all_ms: t.all };
  });
  emptyCache(DEVICE); // hand the memory back before torch starts

  const torch = a.torch ? runTorch(a) : { error: 'skipped (--no-torch)' };
  const t = 'results' in torch ? torch : undefined;

  console.log(`gemm: y = x @ W^T, bf16 in/out, M=${a.m}, on ${deviceName(DEVICE)}; median of ${a.iters} after ${a.warmup} warmup, ${a.sets} input sets`);
  if (t) console.log(`torch ${t.torch}: torch.matmul(x, w.t(), out=y)`);
  else console.log(`torch: ${(torch as { error: string }).error}`);
  console.log('shape     M      N      K       aerie ms  TFLOP/s   torch ms  TFLOP/s   aerie/torch speed');
  const rows = aerie.map((r) => {
    const tr = t?.results.find((x) => x.name === r.name);
    console.log(
      [
        r.name.padEnd(8),
        String(r.m).padStart(5),
        String(r.n).padStart(6),
        String(r.k).padStart(6),
        r.median_ms.toFixed(3).padStart(10),
        r.tflops.toFixed(1).padStart(8),
        tr ? tr.median_ms.toFixed(3).padStart(10) : '         -',
        tr ? tr.tflops.toFixed(1).padStart(8) : '       -',
        tr ? (tr.median_ms / r.median_ms).toFixed(3).padStart(10) + 'x' : '',
      ].join(' '),
    );
    return { ...r, torch_ms: tr?.median_ms ?? null, torch_tflops: tr?.tflops ?? null, ratio: tr ? tr.median_ms / r.median_ms : null };
  });
  if (a.out) {
    const result = {
      bench: 'gemm',
      date: new Date().toISOString(),
      device: deviceName(DEVICE),
      config: { m: a.m, dtype: 'bfloat16', op: 'x @ W^T (transB)', warmup: a.warmup, iters: a.iters, sets: a.sets },
      flops: { convention: '2 M N K' },
      shapes: rows,
      torch,
      ratio_meaning: 'torch ms / aerie ms (> 1: Aerie faster)',
    };
    writeFileSync(a.out, JSON.stringify(result, null, 2));
  }
}

main();
