/**
 * Profiling driver for ncu (bench/profile_gpu.sh): runs Llama-3.1-8B-shaped work with random bf16
 * weights and brackets only the part of interest with cudaProfilerStart/Stop, so
 * `ncu --profile-from-start off` times just those kernels.
 *
 *   node dist/bench/profile.js decode [--context 256] [--steps 2]   eager decode steps (the kernels a
 *                                                                     captured graph replays)
 *   node dist/bench/profile.js prefill [--batch 8] [--seq 2048]      one prefill forward with taps
 */
import { prefill } from '../src/models/batch.js';
import { DecodeRunner } from '../src/models/decode_runner.js';
import { createCausalLM } from '../src/models/load.js';
import { presetConfig } from '../src/models/presets.js';
import { randomSource } from '../src/models/weights.js';
import { argmax } from '../src/runtime/ops/sampling.js';
import { cudaAvailable, cudaUnavailableReason, profilerRange, synchronize } from '../src/runtime/cuda.js';
import { tidy } from '../src/runtime/scope.js';
import { Tensor } from '../src/runtime/tensor.js';

const DEVICE = 'cuda:0' as const;

function flag(argv: string[], name: string, dflt: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer, got ${argv[i + 1]}`);
  return v;
}

function main(): void {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode !== 'decode' && mode !== 'prefill') throw new Error('usage: profile.js decode|prefill [options]');
  if (!cudaAvailable()) throw new Error(`profile needs a GPU: ${cudaUnavailableReason()}`);
  const cfg = presetConfig('llama-3.1-8b');
  const source = randomSource({ seed: 3 });
  const model = createCausalLM(cfg, source, { device: DEVICE, dtype: 'bfloat16' });
  source.dispose();
  let s = 5;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0), s % cfg.vocabSize);
  if (mode === 'decode') {
    const context = flag(rest, '--context', 256);
    const steps = flag(rest, '--steps', 2);
    const blockSize = 16;
    const width = Math.ceil((context + steps + 4) / blockSize);
    const cache = model.createKvCache({ numBlocks: width + 1, blockSize });
    const seq = cache.newSequence();
    const first = prefill(model, [{ ids: Array.from({ length: context }, rand), seq }], { cache });
    let tok = tidy(() => argmax(first.logits!).toNumbers()[0]);
    first.logits!.dispose();
    const runner = new DecodeRunner(model, cache, 1, width, { graph: false });
    tok = tidy(() => argmax(runner.step([seq], [tok])).toNumbers()[0]); // warm the allocator
    synchronize(DEVICE);
    profilerRange(DEVICE, () => {
      for (let i = 0; i < steps; i++) tok = tidy(() => argmax(runner.step([seq], [tok])).toNumbers()[0]);
      synchronize(DEVICE);
    });
    runner.dispose();
    cache.dispose();
  } else {
    const B = flag(rest, '--batch', 8);
    const L = flag(rest, '--seq', 2048);
    const N = cfg.numHiddenLayers;
    const T = B * L;
    const up = (x: Int32Array) => Tensor.fromArray(x, [x.length], { dtype: 'int32', device: DEVICE });
    const inputs = {
      ids: up(Int32Array.from({ length: T }, rand)),
      positions: up(Int32Array.from({ length: T }, (_, t) => t % L)),
      attention: { kind: 'prefill' as const, cuSeqlens: up(Int32Array.from({ length: B + 1 }, (_, b) => b * L)) },
      logitRows: up(Int32Array.from({ length: B }, (_, b) => b * L + L - 1)),
      taps: [2, Math.floor(N / 2), N - 3, N],
    };
    tidy(() => void model.forward(inputs)); // warm
    synchronize(DEVICE);
    profilerRange(DEVICE, () => {
      tidy(() => void model.forward(inputs));
      synchronize(DEVICE);
    });
  }
  model.dispose();
}

main();
