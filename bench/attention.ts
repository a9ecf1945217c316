/**
 * Attention benchmark: Aerie's flash attention forward and backward against PyTorch's
 * scaled_dot_product_attention (flash backend) measured in the same run by bench/torch_attention.py.
 * Default shape: B = 1, L = 4096, 32 query heads, 8 kv heads, hd 128, causal, bf16.
 * Times: CUDA events around each call, median of --iters after --warmup calls (both sides).
 * FLOPs (causal, half the square): forward 2 matmuls = 4 L^2 hd nH / 2; backward 5 matmuls = 2.5x.
 *
 *   node dist/bench/attention.js [--L 4096] [--heads 32] [--kv-heads 8] [--hd 128] [--iters 30]
 *                                [--warmup 10] [--no-torch] [--out PATH]
 */
import { runTorchReference } from './harness.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { CudaEvent, cudaAvailable, cudaUnavailableReason, deviceName, synchronize } from '../src/runtime/cuda.js';
import { attention, attentionBackward, type AttentionOptions } from '../src/runtime/ops/attention.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  L: number;
  heads: number;
  kvHeads: number;
  hd: number;
  iters: number;
  warmup: number;
  torch: boolean;
  out?: string;
}

const program = benchCommand('attention', "Aerie's flash attention forward and backward against torch's flash SDPA", { iters: 30, warmup: 10 })
  .option('--L <n>', 'sequence length', intAtLeast('--L', 1), 4096)
  .option('--heads <n>', 'query heads', intAtLeast('--heads', 1), 32)
  .option('--kv-heads <n>', 'key/value heads', intAtLeast('--kv-heads', 1), 8)
  .option('--hd <n>', 'head dimension', intAtLeast('--hd', 1), 128);

const DEVICE = 'cuda:0' as const;

/** Median milliseconds of `iters` calls of fn, each between two CUDA events, after `warmup` calls. */
function timeMs(fn: () => void, warmup: number, iters: number): { median: number; all: number[] } {
  const start = new CudaEvent(DEVICE);
  const end = new CudaEvent(DEVICE);
  for (let i = 0; i < warmup; i++) tidy(fn);
  synchronize(DEVICE);
  const all: number[] = [];
  for (let i = 0; i < iters; i++) {
    tidy(() => {
      start.record();
      fn();
      end.record();
      end.synchronize();
    });
    all.push(end.elapsedMsSince(start));
  }
  start.destroy();
  end.destroy();
  const sorted = [...all].sort((x, y) => x - y);
  return { median: sorted[Math.floor(sorted.length / 2)], all };
}

interface TorchResult {
  torch: string;
  device: string;
  gqa: string;
  fwd_ms: number;
  bwd_ms: number;
  error?: string;
}

function runTorch(a: Args): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_attention.py', ['--L', a.L, '--heads', a.heads, '--kv-heads', a.kvHeads, '--hd', a.hd, '--iters', a.iters, '--warmup', a.warmup]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`attention bench needs a GPU: ${cudaUnavailableReason()}`);
  const { L, heads: nH, kvHeads: nKV, hd } = a;
  const fwdFlops = (4 * L * L * hd * nH) / 2;
  const bwdFlops = 2.5 * fwdFlops;

  // N(0, 1) inputs, generated on the host once (a simple LCG + Box-Muller: speed, not quality).
  let s = 12345;
  const normal = (n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      const u = (s + 1) / 4294967297;
      s = (s * 1664525 + 1013904223) >>> 0;
      out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * s) / 4294967296);
    }
    return out;
  };
  const mk = (rows: number, h: number) => Tensor.fromArray(normal(rows * h * hd), [rows, h, hd], { dtype: 'bfloat16', device: DEVICE });
  const q = mk(L, nH);
  const k = mk(L, nKV);
  const v = mk(L, nKV);
  const dout = mk(L, nH);
  const opts: AttentionOptions = { cuSeqlens: Tensor.fromArray(Int32Array.from([0, L]), [2], { dtype: 'int32', device: DEVICE }), mask: 'causal' };
  const { out, lse } = attention(q, k, v, opts);

  const fwd = timeMs(() => void attention(q, k, v, opts), a.warmup, a.iters);
  const bwd = timeMs(() => void attentionBackward(dout, q, k, v, out, lse, opts), a.warmup, a.iters);
  const torch = a.torch ? runTorch(a) : { error: 'skipped (--no-torch)' };

  const tflops = (flops: number, ms: number) => flops / (ms * 1e-3) / 1e12;
  const t = 'fwd_ms' in torch ? torch : undefined;
  const rows = [
    { op: 'forward', ms: fwd.median, flops: fwdFlops, torchMs: t?.fwd_ms },
    { op: 'backward', ms: bwd.median, flops: bwdFlops, torchMs: t?.bwd_ms },
  ];
  console.log(`attention: B=1 L=${L} heads ${nH}/${nKV} hd ${hd} causal bf16 on ${deviceName(DEVICE)}; median of ${a.iters} after ${a.warmup} warmup`);
  if (t) console.log(`torch ${t.torch}, SDPA flash backend, GQA via ${t.gqa}`);
  else console.log(`torch: ${(torch as { error: string }).error}`);
  console.log('op        aerie ms  TFLOP/s   torch ms  TFLOP/s   aerie/torch speed');
  for (const r of rows) {
    const cols = [
      r.op.padEnd(9),
      r.ms.toFixed(3).padStart(8),
      tflops(r.flops, r.ms).toFixed(1).padStart(8),
      r.torchMs !== undefined ? r.torchMs.toFixed(3).padStart(10) : '         -',
      r.torchMs !== undefined ? tflops(r.flops, r.torchMs).toFixed(1).padStart(8) : '       -',
      r.torchMs !== undefined ? (r.torchMs / r.ms).toFixed(2).padStart(10) + 'x' : '',
    ];
    console.log(cols.join('  '));
  }
  if (a.out) {
    const result = {
      bench: 'attention',
      date: new Date().toISOString(),
      device: deviceName(DEVICE),
      config: { B: 1, L, numHeads: nH, numKvHeads: nKV, headDim: hd, mask: 'causal', dtype: 'bfloat16', warmup: a.warmup, iters: a.iters },
      flops: { forward: fwdFlops, backward: bwdFlops, convention: 'causal: forward 2 L^2 hd nH, backward 2.5x forward' },
      aerie: {
        fwd_ms: fwd.median,
        bwd_ms: bwd.median,
        fwd_tflops: tflops(fwdFlops, fwd.median),
        bwd_tflops: tflops(bwdFlops, bwd.median),
        fwd_all_ms: fwd.all,
        bwd_all_ms: bwd.all,
      },
      torch,
      ratio: t ? { fwd: t.fwd_ms / fwd.median, bwd: t.bwd_ms / bwd.median, meaning: 'torch ms / aerie ms (> 1: Aerie faster)' } : null,
    };
    writeFileSync(a.out, JSON.stringify(result, null, 2));
  }
  for (const x of [q, k, v, dout, out, lse, opts.cuSeqlens]) x.dispose();
}

main();
