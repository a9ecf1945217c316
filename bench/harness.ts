/**
 * Timing harness shared by the bandwidth benchmarks (membw, adamw): CUDA-event timing of queued
 * calls, and the device's copy ceiling measured through the runtime (a large device-to-device copy,
 * counting the bytes read plus the bytes written), against which memory-bound kernels are reported.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CudaEvent, synchronize } from '../src/runtime/cuda.js';
import type { Device } from '../src/runtime/device.js';
import { Tensor } from '../src/runtime/tensor.js';

export interface TimeOptions {
  /** Calls before timing starts (default 5). */
  warmup?: number;
  /** Timed calls; the median is reported (default 30, at least 20). */
  iters?: number;
  /** Where the work runs (default cuda:0). */
  device?: Device;
}

export interface Timing {
  median: number;
  all: number[];
}

/**
 * Milliseconds of each of `iters` calls fn(i), each between two CUDA events on the device's current
 * stream, after `warmup` calls. All calls are queued before one synchronisation, so the intervals
 * are GPU time (host launch latency is hidden behind the queued work).
 */
export function timeCudaAll(fn: (i: number) => void, opts: TimeOptions = {}): Timing {
  const warmup = opts.warmup ?? 5;
  const iters = opts.iters ?? 30;
  const device = opts.device ?? 'cuda:0';
  if (!(iters >= 20)) throw new Error(`timeCuda: iters must be >= 20 (the median of at least 20 runs), got ${iters}`);
  for (let i = 0; i < warmup; i++) fn(i);
  synchronize(device);
  const starts = Array.from({ length: iters }, () => new CudaEvent(device));
  const ends = Array.from({ length: iters }, () => new CudaEvent(device));
  try {
    for (let i = 0; i < iters; i++) {
      starts[i].record();
      fn(warmup + i);
      ends[i].record();
    }
    ends[iters - 1].synchronize();
    const all = ends.map((e, i) => e.elapsedMsSince(starts[i]));
    const sorted = [...all].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return { median, all };
  } finally {
    for (const e of [...starts, ...ends]) e.destroy();
  }
}

/** The median milliseconds of timeCudaAll. */
export function timeCuda(fn: (i: number) => void, opts: TimeOptions = {}): number {
  return timeCudaAll(fn, opts).median;
}

export interface CeilingOptions {
  /** Size of the copied buffer (default 1 GiB: 2 GiB moved per copy). */
  bytes?: number;
  warmup?: number;
  iters?: number;
}

/**
 * The device's copy ceiling in bytes per second: a device-to-device copy of `bytes` through the
 * runtime (Storage.copyFrom, cudaMemcpyAsync), counting the bytes read plus the bytes written,
 * median of >= 20 copies after warmup.
 */
export function copyCeiling(device: Device, opts: CeilingOptions = {}): number {
  const bytes = opts.bytes ?? 2 ** 30;
  const src = Tensor.empty([bytes], 'uint8', device);
  const dst = Tensor.empty([bytes], 'uint8', device);
  try {
    src.storage.fill(1);
    const ms = timeCuda(() => dst.storage.copyFrom(src.storage), { warmup: opts.warmup ?? 5, iters: opts.iters ?? 30, device });
    return (2 * bytes) / (ms / 1000);
  } finally {
    src.dispose();
    dst.dispose();
  }
}

/**
 * Runs the PyTorch reference bench/<script> with `args` in this same run and parses the JSON object
 * on the last line of its stdout. Failures come back as {error} so the Aerie figures still print.
 */
export function runTorchReference<T>(script: string, args: readonly (string | number)[]): T | { error: string } {
  const here = dirname(fileURLToPath(import.meta.url)); // bench/ (vitest) or dist/bench/ (compiled)
  const path = [join(here, '../../bench', script), join(here, script)].find((p) => existsSync(p));
  if (!path) return { error: `bench/${script} not found` };
  const r = spawnSync('python3', [path, ...args.map(String)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return { error: `python3 ${path} failed (${r.status}): ${(r.stderr || r.error?.message || '').trim().slice(-2000)}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    return { error: `could not parse torch output: ${line.slice(0, 500)}` };
  }
}
