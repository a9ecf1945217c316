/**
 * Memory-bandwidth benchmark of the memory-bound kernels on large bf16 tensors ([rows, cols],
 * default 32768 x 4096): elementwise add, RMSNorm forward and backward (plain and fused with the
 * residual add), SwiGLU forward and backward (separate and fused gate/up). Each is reported as
 * achieved bandwidth and as a percentage of the device's copy ceiling (bench/harness.ts copyCeiling,
 * a 1 GiB device-to-device copy through the runtime, read + write, measured in the same run).
 * Bytes are the minimum each op must move: every input read once, every output written once
 * (small vectors such as w, rstd and dw included). Times: median of --iters calls after --warmup
 * (CUDA events, calls queued back to back). bench/torch_membw.py runs torch's own copy (and its
 * eager versions of the same ops) in the same run for reference.
 *
 *   node dist/bench/membw.js [--rows 32768] [--cols 4096] [--iters 30] [--warmup 5] [--only NAME-PART] [--no-torch] [--out PATH]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { cudaAvailable, cudaUnavailableReason, deviceName, emptyCache, synchronize } from '../src/runtime/cuda.js';
import { add } from '../src/runtime/ops/elementwise.js';
import { addRmsnorm, addRmsnormBackward, rmsnorm, rmsnormBackward } from '../src/runtime/ops/norm.js';
import { swiglu, swigluBackward, swigluFused, swigluFusedBackward } from '../src/runtime/ops/activation.js';
import { copyCeiling, timeCuda, runTorchReference } from './harness.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  rows: number;
  cols: number;
  iters: number;
  warmup: number;
  torch: boolean;
  only?: string;
  out?: string;
}

const program = benchCommand('membw', 'the memory-bound kernels on large bf16 tensors, against the copy ceiling and torch', { iters: 30, warmup: 5 })
  .option('--rows <n>', 'rows of every tensor', intAtLeast('--rows', 1), 32768)
  .option('--cols <n>', 'columns of every tensor', intAtLeast('--cols', 1), 4096)
  .option('--only <names>', 'comma-separated kernels to run (default: all)');

const DEVICE = 'cuda:0' as const;
const BF16 = 2;
const F32 = 4;

/** A bf16 tensor filled with 0x3c3c (about 0.0115): finite, nonzero, and cheap to create. */
function filled(shape: number[]): Tensor {
  const t = Tensor.empty(shape, 'bfloat16', DEVICE);
  t.storage.fill(0x3c);
  return t;
}

interface Case {
  name: string;
  /** Minimal bytes moved per call. */
  bytes: number;
  /** Builds the inputs; returns the timed call and a cleanup. */
  setup(): { run: () => void; dispose: () => void };
}

function cases(rows: number, cols: number): Case[] {
  const n = rows * cols;
  const w = cols * BF16;
  const rstd = rows * F32;
  return [
    {
      name: 'add a + b',
      bytes: 3 * n * BF16,
      setup() {
        const [a, b] = [filled([rows, cols]), filled([rows, cols])];
        return { run: () => tidy(() => void add(a, b)), dispose: () => [a, b].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'rmsnorm fwd',
      bytes: 2 * n * BF16 + w + rstd,
      setup() {
        const [x, g] = [filled([rows, cols]), filled([cols])];
        return { run: () => tidy(() => void rmsnorm(x, g)), dispose: () => [x, g].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'rmsnorm bwd',
      bytes: 3 * n * BF16 + w + rstd + cols * F32,
      setup() {
        const [x, g, dy] = [filled([rows, cols]), filled([cols]), filled([rows, cols])];
        const { y, rstd: r } = rmsnorm(x, g);
        y.dispose();
        return { run: () => tidy(() => void rmsnormBackward(dy, x, g, r)), dispose: () => [x, g, dy, r].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'add+rmsnorm fwd',
      bytes: 4 * n * BF16 + w + rstd,
      setup() {
        const [x, res, g] = [filled([rows, cols]), filled([rows, cols]), filled([cols])];
        return { run: () => tidy(() => void addRmsnorm(x, res, g)), dispose: () => [x, res, g].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'add+rmsnorm bwd',
      bytes: 4 * n * BF16 + w + rstd + cols * F32,
      setup() {
        const [x, res, g, dy, dh] = [filled([rows, cols]), filled([rows, cols]), filled([cols]), filled([rows, cols]), filled([rows, cols])];
        const { y, h, rstd: r } = addRmsnorm(x, res, g);
        y.dispose();
        return {
          run: () => tidy(() => void addRmsnormBackward(dy, dh, h, g, r)),
          dispose: () => [x, res, g, dy, dh, h, r].forEach((t) => t.dispose()),
        };
      },
    },
    {
      name: 'swiglu fwd',
      bytes: 3 * n * BF16,
      setup() {
        const [gate, up] = [filled([rows, cols]), filled([rows, cols])];
        return { run: () => tidy(() => void swiglu(gate, up)), dispose: () => [gate, up].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'swiglu fwd (fused gate|up)',
      bytes: 3 * n * BF16,
      setup() {
        const gu = filled([rows, 2 * cols]);
        return { run: () => tidy(() => void swigluFused(gu)), dispose: () => gu.dispose() };
      },
    },
    {
      name: 'swiglu bwd',
      bytes: 5 * n * BF16,
      setup() {
        const [gate, up, dout] = [filled([rows, cols]), filled([rows, cols]), filled([rows, cols])];
        return { run: () => tidy(() => void swigluBackward(dout, gate, up)), dispose: () => [gate, up, dout].forEach((t) => t.dispose()) };
      },
    },
    {
      name: 'swiglu bwd (fused gate|up)',
      bytes: 5 * n * BF16,
      setup() {
        const [gu, dout] = [filled([rows, 2 * cols]), filled([rows, cols])];
        return { run: () => tidy(() => void swigluFusedBackward(dout, gu)), dispose: () => [gu, dout].forEach((t) => t.dispose()) };
      },
    },
  ];
}

interface TorchRow {
  name: string;
  bytes: number;
  median_ms: number;
}
interface TorchResult {
  torch: string;
  device: string;
  copy_ceiling_bytes_per_s: number;
  results: TorchRow[];
}

function runTorch(a: Args): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_membw.py', ['--rows', a.rows, '--cols', a.cols, '--iters', a.iters, '--warmup', a.warmup]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`membw bench needs a GPU: ${cudaUnavailableReason()}`);
  const ceiling = copyCeiling(DEVICE, { warmup: a.warmup, iters: a.iters });
  const gbs = (bytes: number, ms: number) => bytes / (ms * 1e-3) / 1e9;

  const rows = cases(a.rows, a.cols).filter((c) => !a.only || c.name.includes(a.only)).map((c) => {
    const { run, dispose } = c.setup();
    const ms = timeCuda(run, { warmup: a.warmup, iters: a.iters, device: DEVICE });
    dispose();
    synchronize(DEVICE);
    const bytesPerSecond = c.bytes / (ms * 1e-3);
    return { name: c.name, bytes: c.bytes, median_ms: ms, gb_per_s: bytesPerSecond / 1e9, percent_of_copy: (100 * bytesPerSecond) / ceiling };
  });
  emptyCache(DEVICE); // hand the memory back before torch starts

  const torch = a.torch ? runTorch(a) : { error: 'skipped (--no-torch)' };
  const t = 'results' in torch ? torch : undefined;

  console.log(`membw: bf16 [${a.rows}, ${a.cols}] on ${deviceName(DEVICE)}; median of ${a.iters} after ${a.warmup} warmup`);
  console.log(`copy ceiling (aerie D2D 1 GiB, read+write): ${(ceiling / 1e9).toFixed(0)} GB/s`);
  if (t) console.log(`torch ${t.torch} copy ceiling (same method):  ${(t.copy_ceiling_bytes_per_s / 1e9).toFixed(0)} GB/s`);
  else console.log(`torch: ${(torch as { error: string }).error}`);
  console.log('op                             MB moved    aerie ms     GB/s  % copy    torch ms  % copy');
  const table = rows.map((r) => {
    const tr = t?.results.find((x) => x.name === r.name);
    const torchPct = tr && t ? (100 * tr.bytes) / (tr.median_ms * 1e-3) / t.copy_ceiling_bytes_per_s : null;
    console.log(
      [
        r.name.padEnd(28),
        (r.bytes / 1e6).toFixed(0).padStart(10),
        r.median_ms.toFixed(3).padStart(11),
        gbs(r.bytes, r.median_ms).toFixed(0).padStart(8),
        r.percent_of_copy.toFixed(1).padStart(7),
        tr ? tr.median_ms.toFixed(3).padStart(11) : '          -',
        torchPct !== null ? torchPct.toFixed(1).padStart(7) : '      -',
      ].join(' '),
    );
    return { ...r, torch_ms: tr?.median_ms ?? null, torch_percent_of_its_copy: torchPct };
  });
  if (a.out) {
    const result = {
      bench: 'membw',
      date: new Date().toISOString(),
      device: deviceName(DEVICE),
      config: { rows: a.rows, cols: a.cols, dtype: 'bfloat16', warmup: a.warmup, iters: a.iters },
      copy_ceiling_bytes_per_s: ceiling,
      bytes_convention: 'each input read once, each output written once',
      results: table,
      torch,
    };
    writeFileSync(a.out, JSON.stringify(result, null, 2));
  }
}

main();
