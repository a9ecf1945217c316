/**
 * Decode benchmark, batch 1: Llama-3.1-8B shapes with random bf16 weights made on the device, a
 * prompt of --context tokens prefilled into the paged KV cache, then --steps greedy decode steps,
 * each a CUDA-graph replay (forward + argmax) with its token read back while the next step runs:
 * generate()'s greedy loop (GreedyDecodePipeline). Reported against the memory roofline: (weight
 * bytes a step reads + the KV cache it reads) / the device's measured copy bandwidth
 * (bench/harness.ts copyCeiling: bytes read + written by a large device-to-device copy). Also: the
 * GPU time of one replayed step alone (CUDA events, median), the graphed steps with the host in
 * lockstep (step, read back, next: what the pipeline hides), the loop without CUDA graphs, the
 * KV-cache bytes per token, and transformers' generate (bench/torch_decode.py) in the same run.
 *
 *   node dist/bench/decode.js [--context 128] [--steps 256] [--no-torch] [--out PATH]
 */
import { writeFileSync } from 'node:fs';
import { copyCeiling, timeCudaAll, runTorchReference } from './harness.js';
import { prefill } from '../src/models/batch.js';
import { GreedyDecodePipeline } from '../src/models/decode_pipeline.js';
import { DecodeRunner } from '../src/models/decode_runner.js';
import type { KvSequence } from '../src/models/kv_cache.js';
import { createCausalLM } from '../src/models/load.js';
import { presetConfig } from '../src/models/presets.js';
import { randomSource } from '../src/models/weights.js';
import { argmax } from '../src/runtime/ops/sampling.js';
import { cudaAvailable, cudaUnavailableReason, deviceName, emptyCache, synchronize } from '../src/runtime/cuda.js';
import { tidy } from '../src/runtime/scope.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  context: number;
  steps: number;
  eagerSteps: number;
  torch: boolean;
  out?: string;
}

const program = benchCommand('decode', 'batch-1 greedy decode on Llama-3.1-8B shapes against the memory roofline and transformers')
  .option('--context <n>', 'prompt tokens prefilled before decoding', intAtLeast('--context', 1), 128)
  .option('--steps <n>', 'timed decode steps (CUDA graphs)', intAtLeast('--steps', 20), 256)
  .option('--eager-steps <n>', 'timed decode steps without graphs', intAtLeast('--eager-steps', 1), 64);

const DEVICE = 'cuda:0' as const;

interface TorchResult {
  torch: string;
  transformers: string;
  attn_implementation: string;
  tokens_per_s: number;
  error?: string;
}

function runTorch(a: Args): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_decode.py', ['--context', a.context, '--steps', Math.min(a.steps, 128)]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`decode bench needs a GPU: ${cudaUnavailableReason()}`);
  const cfg = presetConfig('llama-3.1-8b');
  const source = randomSource({ seed: 2 });
  const model = createCausalLM(cfg, source, { device: DEVICE, dtype: 'bfloat16' });
  source.dispose();
  const blockSize = 16;
  const maxLen = a.context + a.steps + a.eagerSteps + 2;
  const width = Math.ceil(maxLen / blockSize);
  const cache = model.createKvCache({ numBlocks: 2 * width, blockSize });
  const bandwidth = copyCeiling(DEVICE);

  let s = 11;
  const prompt = Array.from({ length: a.context }, () => ((s = (s * 1664525 + 1013904223) >>> 0), s % cfg.vocabSize));

  /** A new sequence with the prompt prefilled; returns it and its first greedy token. */
  const start = (): { seq: KvSequence; tok: number } => {
    const seq = cache.newSequence();
    const first = prefill(model, [{ ids: prompt, seq }], { cache });
    const tok = tidy(() => argmax(first.logits!).toNumbers()[0]);
    first.logits!.dispose();
    return { seq, tok };
  };

  /**
   * The generation loop generate() runs for greedy decoding (GreedyDecodePipeline: each step queued
   * before the previous one's token is read back). Returns tokens/s over `steps` after two untimed
   * steps (each runner's first step runs eagerly and is captured).
   */
  const loop = (graph: boolean, steps: number): { tokensPerS: number; stepGpuMs: number } => {
    const { seq, tok: tok0 } = start();
    let tok = tok0;
    const pipeline = new GreedyDecodePipeline(model, cache, 1, width, { graph });
    try {
      const take = (n: number): number => {
        let got = 0;
        const launches = pipeline.run([seq], [tok], [n], (_, t) => ((tok = t), ++got < n));
        if (got !== n || launches !== n) throw new Error(`decode bench: ${got} tokens in ${launches} steps, expected ${n}`);
        return got;
      };
      take(2);
      synchronize(DEVICE);
      const t0 = performance.now();
      take(steps);
      const secs = (performance.now() - t0) / 1000;
      const gpu = timeCudaAll(() => pipeline.repeatLast(), { warmup: 3, iters: 30, device: DEVICE });
      return { tokensPerS: steps / secs, stepGpuMs: gpu.median };
    } finally {
      pipeline.dispose();
      cache.release(seq);
    }
  };

  /** The same steps with the host in lockstep (step, argmax, read back, next): what the pipeline hides. */
  const lockstep = (steps: number): number => {
    const { seq, tok: tok0 } = start();
    let tok = tok0;
    const runner = new DecodeRunner(model, cache, 1, width, { graph: true });
    try {
      tok = tidy(() => argmax(runner.step([seq], [tok])).toNumbers()[0]); // eager run + capture
      synchronize(DEVICE);
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) tok = tidy(() => argmax(runner.step([seq], [tok])).toNumbers()[0]);
      return steps / ((performance.now() - t0) / 1000);
    } finally {
      runner.dispose();
      cache.release(seq);
    }
  };

  const graphed = loop(true, a.steps);
  const lockstepTokensPerS = lockstep(a.steps);
  const eager = loop(false, a.eagerSteps);
  const kvPerToken = cache.bytesPerToken;
  const avgContext = a.context + a.steps / 2;
  const decodeWeightBytes = model.decodeWeightBytes();
  const stepBytes = decodeWeightBytes + avgContext * kvPerToken;
  const roofline = bandwidth / stepBytes;
  const anchorRoofline = bandwidth / model.weightBytes();
  const weightBytes = model.weightBytes();
  cache.dispose();
  model.dispose();
  synchronize(DEVICE);
  emptyCache(DEVICE);

  const torch = a.torch ? runTorch(a) : { error: 'skipped (--no-torch)' };
  const t = 'tokens_per_s' in torch ? torch : undefined;
  console.log(`decode: Llama-3.1-8B shapes, random bf16 weights, batch 1, context ${a.context}, ${a.steps} greedy steps on ${deviceName(DEVICE)}`);
  console.log(`copy bandwidth ${(bandwidth / 1e12).toFixed(2)} TB/s; a step reads ${(stepBytes / 1e9).toFixed(2)} GB (weights ${(decodeWeightBytes / 1e9).toFixed(2)} GB + KV at mean context)`);
  console.log(`roofline ${roofline.toFixed(1)} tokens/s (all ${(weightBytes / 1e9).toFixed(2)} GB of weights, as ANCHORS.md: ${anchorRoofline.toFixed(1)})`);
  console.log(`aerie, CUDA graphs: ${graphed.tokensPerS.toFixed(1)} tokens/s = ${((100 * graphed.tokensPerS) / roofline).toFixed(1)}% of the roofline (goal >= 85%); one replayed step ${graphed.stepGpuMs.toFixed(3)} ms on the GPU (${((100 * stepBytes) / (graphed.stepGpuMs / 1000) / bandwidth).toFixed(1)}% of the bandwidth)`);
  console.log(`aerie, CUDA graphs, host in lockstep (no pipelining): ${lockstepTokensPerS.toFixed(1)} tokens/s = ${((100 * lockstepTokensPerS) / roofline).toFixed(1)}% of the roofline`);
  console.log(`aerie, eager steps: ${eager.tokensPerS.toFixed(1)} tokens/s; one step ${eager.stepGpuMs.toFixed(3)} ms`);
  console.log(`KV cache: ${kvPerToken} bytes per token (${(kvPerToken / 1024).toFixed(0)} KiB, bf16)`);
  if (t) console.log(`transformers ${t.transformers} generate (torch ${t.torch}, ${t.attn_implementation}): ${t.tokens_per_s.toFixed(1)} tokens/s; aerie ${(graphed.tokensPerS / t.tokens_per_s).toFixed(1)}x`);
  else console.log(`transformers: ${(torch as { error: string }).error}`);
  if (a.out) {
    writeFileSync(
      a.out,
      JSON.stringify(
        {
          bench: 'decode',
          date: new Date().toISOString(),
          device: deviceName(DEVICE),
          config: { model: 'llama-3.1-8b shapes', dtype: 'bfloat16', batch: 1, context: a.context, steps: a.steps, blockSize },
          bandwidth_bytes_per_s: bandwidth,
          step_bytes: stepBytes,
          weight_bytes: weightBytes,
          kv_bytes_per_token: kvPerToken,
          roofline_tokens_per_s: roofline,
          aerie: { graph: graphed, eager, lockstep_tokens_per_s: lockstepTokensPerS, fraction_of_roofline: graphed.tokensPerS / roofline },
          torch,
        },
        null,
        2,
      ),
    );
  }
}

main();
