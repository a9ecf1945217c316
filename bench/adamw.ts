/**
 * AdamW bandwidth benchmark: Aerie's fused AdamW step over N fp32 master weights (default 256M),
 * reported as bytes moved per second and as a percentage of the device's copy ceiling
 * (bench/harness.ts copyCeiling, a 1 GiB device-to-device copy, read + write, measured in the same
 * run). AdamW is bandwidth-bound, so that percentage is the figure of merit.
 * Bytes per element: p, m, v fp32 read and written (24) + the gradient read (2 bf16, 4 f32) + the
 * 16-bit model copy written (2, when asked for). The clip coefficient is one device scalar and not
 * counted. Times: median of --iters steps after --warmup (CUDA events, steps queued back to back).
 * bench/torch_adamw.py runs torch.optim.AdamW(fused=True) (f32 gradient, no copy) in the same run.
 *
 *   node dist/bench/adamw.js [--n 268435456] [--iters 30] [--warmup 5] [--no-torch] [--out PATH]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { cudaAvailable, cudaUnavailableReason, deviceName, emptyCache, synchronize } from '../src/runtime/cuda.js';
import { adamwStep } from '../src/runtime/ops/optimizer.js';
import { copyCeiling, timeCuda, runTorchReference } from './harness.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  n: number;
  iters: number;
  warmup: number;
  torch: boolean;
  out?: string;
}

const program = benchCommand('adamw', "Aerie's fused AdamW step over N fp32 master weights, against the copy ceiling and torch", { iters: 30, warmup: 5 })
  .option('--n <n>', 'parameters', intAtLeast('--n', 1), 256 * 2 ** 20);

const DEVICE = 'cuda:0' as const;

interface Variant {
  name: string;
  gradDType: DType;
  copyDType?: DType;
  clip: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'bf16 grad, bf16 copy, clip (training)', gradDType: 'bfloat16', copyDType: 'bfloat16', clip: true },
  { name: 'bf16 grad, no copy', gradDType: 'bfloat16', clip: false },
  { name: 'f32 grad, no copy (as torch fused)', gradDType: 'float32', clip: false },
];

function bytesPerElement(v: Variant): number {
  return 3 * 4 * 2 + (v.gradDType === 'float32' ? 4 : 2) + (v.copyDType ? 2 : 0);
}

/** Times `steps` of one variant; the tensors are freed before returning. */
function timeVariant(v: Variant, a: Args): number {
  // Values do not matter for bandwidth, only that they stay finite: p = g = 0x3c bytes (about
  // 0.0115 in f32 and bf16), m = v = 0.
  const p = Tensor.empty([a.n], 'float32', DEVICE);
  p.storage.fill(0x3c);
  const g = Tensor.empty([a.n], v.gradDType, DEVICE);
  g.storage.fill(0x3c);
  const m = Tensor.zeros([a.n], 'float32', DEVICE);
  const s = Tensor.zeros([a.n], 'float32', DEVICE);
  const modelCopy = v.copyDType ? Tensor.empty([a.n], v.copyDType, DEVICE) : undefined;
  const clipCoef = v.clip ? Tensor.fromArray([0.5], [], { device: DEVICE }) : undefined;
  try {
    // fn(i) counts from 0 over warmup and timed calls: step i + 1.
    return timeCuda((i) => adamwStep(p, g, m, s, { lr: 1e-4, step: i + 1, weightDecay: 0.01, modelCopy, clipCoef }), {
      warmup: a.warmup,
      iters: a.iters,
      device: DEVICE,
    });
  } finally {
    for (const t of [p, g, m, s, modelCopy, clipCoef]) t?.dispose();
    synchronize(DEVICE);
  }
}

interface TorchResult {
  torch: string;
  device: string;
  copy_ceiling_bytes_per_s: number;
  results: { name: string; bytes: number; median_ms: number }[];
}

function runTorch(a: Args): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_adamw.py', ['--n', a.n, '--iters', a.iters, '--warmup', a.warmup]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`adamw bench needs a GPU: ${cudaUnavailableReason()}`);
  const ceiling = copyCeiling(DEVICE, { warmup: a.warmup, iters: a.iters });
  const rows = VARIANTS.map((v) => {
    const ms = timeVariant(v, a);
    const bytes = bytesPerElement(v) * a.n;
    const bytesPerSecond = bytes / (ms * 1e-3);
    return { name: v.name, bytes_per_element: bytesPerElement(v), bytes, median_ms: ms, gb_per_s: bytesPerSecond / 1e9, percent_of_copy: (100 * bytesPerSecond) / ceiling };
  });
  emptyCache(DEVICE); // hand the memory back before torch starts

  const torch = a.torch ? runTorch(a) : { error: 'skipped (--no-torch)' };
  const t = 'results' in torch ? torch : undefined;

  console.log(`adamw: N = ${a.n} fp32 master weights on ${deviceName(DEVICE)}; median of ${a.iters} after ${a.warmup} warmup`);
  console.log(`copy ceiling (aerie D2D 1 GiB, read+write): ${(ceiling / 1e9).toFixed(0)} GB/s`);
  if (t) console.log(`torch ${t.torch} copy ceiling (same method):  ${(t.copy_ceiling_bytes_per_s / 1e9).toFixed(0)} GB/s`);
  else console.log(`torch: ${(torch as { error: string }).error}`);
  console.log('variant                                  B/elem    median ms     GB/s  % copy');
  const line = (name: string, bpe: number, ms: number, bps: number, pct: number) =>
    console.log(
      [name.padEnd(40), String(bpe).padStart(6), ms.toFixed(3).padStart(12), (bps / 1e9).toFixed(0).padStart(8), pct.toFixed(1).padStart(7)].join(' '),
    );
  for (const r of rows) line(r.name, r.bytes_per_element, r.median_ms, r.gb_per_s * 1e9, r.percent_of_copy);
  const torchRows = (t?.results ?? []).map((r) => {
    const bps = r.bytes / (r.median_ms * 1e-3);
    const pct = (100 * bps) / t!.copy_ceiling_bytes_per_s;
    line(r.name, r.bytes / a.n, r.median_ms, bps, pct);
    return { ...r, gb_per_s: bps / 1e9, percent_of_its_copy: pct };
  });
  if (a.out) {
    const result = {
      bench: 'adamw',
      date: new Date().toISOString(),
      device: deviceName(DEVICE),
      config: { n: a.n, warmup: a.warmup, iters: a.iters, lr: 1e-4, weight_decay: 0.01 },
      copy_ceiling_bytes_per_s: ceiling,
      bytes_convention: 'p, m, v fp32 read and written; gradient read; model copy written',
      results: rows,
      torch: t ? { ...t, results: torchRows } : torch,
    };
    writeFileSync(a.out, JSON.stringify(result, null, 2));
  }
}

main();
