/**
 * Prefill benchmark, the datagen shape: Llama-3.1-8B shapes with random bf16 weights made on the
 * device (no download), B sequences of L tokens packed into one step (cu_seqlens), hidden states
 * tapped at the EAGLE-3 layers [2, N/2, N-3] plus N, logits only at each sequence's last position.
 * Against transformers in the same run (bench/torch_prefill.py): LlamaForCausalLM, sdpa,
 * output_hidden_states=True, logits_to_keep=1 (the same work: no [T, V] logits); the figure with full
 * logits (what ANCHORS.md's 32.8k tokens/s measured) is reported beside it.
 * Times: CUDA events around each forward, all queued before one synchronisation, median of --iters
 * after --warmup. FLOPs: 2 x (non-embedding parameters) per token, plus causal attention 2 L^2 hd nH
 * per layer and sequence, plus the head at the logits rows.
 *
 *   node dist/bench/prefill.js [--batch 8] [--seq 2048] [--iters 20] [--warmup 3] [--no-torch] [--out PATH]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { timeCudaAll, runTorchReference } from './harness.js';
import { createCausalLM } from '../src/models/load.js';
import { presetConfig } from '../src/models/presets.js';
import { randomSource } from '../src/models/weights.js';
import { cudaAvailable, cudaUnavailableReason, deviceName, emptyCache, memoryStats, resetPeakMemory, synchronize } from '../src/runtime/cuda.js';
import { tidy } from '../src/runtime/scope.js';
import { Tensor } from '../src/runtime/tensor.js';
import { benchCommand, intAtLeast, parseBench } from './cli.js';

interface Args {
  batch: number;
  seq: number;
  iters: number;
  warmup: number;
  torch: boolean;
  out?: string;
}

const program = benchCommand('prefill', 'prefill with EAGLE-3 taps on Llama-3.1-8B shapes against transformers', { iters: 20, warmup: 3 })
  .option('--batch <n>', 'sequences packed into one step', intAtLeast('--batch', 1), 8)
  .option('--seq <n>', 'tokens per sequence', intAtLeast('--seq', 1), 2048);

const DEVICE = 'cuda:0' as const;

interface TorchResult {
  torch: string;
  transformers: string;
  attn_implementation: string;
  keep1_ms: number;
  full_ms: number | null;
  error?: string;
}

function runTorch(a: Args, taps: number[]): TorchResult | { error: string } {
  return runTorchReference<TorchResult>('torch_prefill.py', ['--batch', a.batch, '--seq', a.seq, '--iters', a.iters, '--warmup', a.warmup, '--taps', taps.join(',')]);
}

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`prefill bench needs a GPU: ${cudaUnavailableReason()}`);
  const cfg = presetConfig('llama-3.1-8b');
  const N = cfg.numHiddenLayers;
  const taps = [2, Math.floor(N / 2), N - 3, N];
  const B = a.batch;
  const L = a.seq;
  const T = B * L;

  const source = randomSource({ seed: 1 });
  const model = createCausalLM(cfg, source, { device: DEVICE, dtype: 'bfloat16' });
  source.dispose();
  const ids = new Int32Array(T);
  const positions = new Int32Array(T);
  let s = 7;
  for (let t = 0; t < T; t++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    ids[t] = s % cfg.vocabSize;
    positions[t] = t % L;
  }
  const cu = Int32Array.from({ length: B + 1 }, (_, b) => b * L);
  const lastRows = Int32Array.from({ length: B }, (_, b) => b * L + L - 1);
  const up = (x: Int32Array) => Tensor.fromArray(x, [x.length], { dtype: 'int32', device: DEVICE });
  const inputs = {
    ids: up(ids),
    positions: up(positions),
    attention: { kind: 'prefill' as const, cuSeqlens: up(cu) },
    logitRows: up(lastRows),
    taps,
  };

  resetPeakMemory(DEVICE);
  // cudaMalloc inside the timed loop would mean the caching allocator never settles (and syncs).
  let mallocsBefore = 0;
  const timing = timeCudaAll(
    (i) => {
      if (i === a.warmup) mallocsBefore = memoryStats(DEVICE).numCudaMallocs;
      tidy(() => void model.forward(inputs));
    },
    { warmup: a.warmup, iters: a.iters, device: DEVICE },
  );
  synchronize(DEVICE);
  const timedMallocs = memoryStats(DEVICE).numCudaMallocs - mallocsBefore;
  const peakBytes = memoryStats(DEVICE).peakBytesInUse;
  const weightBytes = model.weightBytes();

  // FLOPs of the work done: projections + MLP over T tokens, causal attention, head at B rows.
  const H = cfg.hiddenSize;
  const q = cfg.numAttentionHeads * cfg.headDim;
  const kv = cfg.numKeyValueHeads * cfg.headDim;
  const perLayerParams = H * (q + 2 * kv) + q * H + 3 * H * cfg.intermediateSize;
  const flops = 2 * T * N * perLayerParams + N * B * 2 * L * L * cfg.headDim * cfg.numAttentionHeads + 2 * B * H * cfg.vocabSize;
  const aerieMs = timing.median;

  model.dispose();
  for (const t of [inputs.ids, inputs.positions, inputs.attention.cuSeqlens, inputs.logitRows]) t.dispose();
  synchronize(DEVICE);
  emptyCache(DEVICE); // hand the memory to the torch process

  const torch = a.torch ? runTorch(a, taps) : { error: 'skipped (--no-torch)' };
  const t = 'keep1_ms' in torch ? torch : undefined;
  const tokps = (ms: number) => T / (ms / 1000);
  const tflops = (ms: number) => flops / (ms / 1000) / 1e12;
  console.log(`prefill: Llama-3.1-8B shapes, random bf16 weights, ${B} x ${L} tokens packed, taps [${taps.join(', ')}], logits at the ${B} last positions`);
  console.log(`device ${deviceName(DEVICE)}; median of ${a.iters} after ${a.warmup} warmup; peak ${(peakBytes / 2 ** 30).toFixed(1)} GiB in use; ${timedMallocs} cudaMalloc calls while timed; min ${Math.min(...timing.all).toFixed(1)} ms`);
  console.log(`aerie:                        ${aerieMs.toFixed(1)} ms  ${tokps(aerieMs).toFixed(0)} tokens/s  ${tflops(aerieMs).toFixed(0)} TFLOP/s`);
  if (t) {
    console.log(`transformers ${t.transformers} (torch ${t.torch}, ${t.attn_implementation}), logits_to_keep=1: ${t.keep1_ms.toFixed(1)} ms  ${tokps(t.keep1_ms).toFixed(0)} tokens/s`);
    if (t.full_ms !== null) console.log(`transformers, all logits (ANCHORS.md's setting): ${t.full_ms.toFixed(1)} ms  ${tokps(t.full_ms).toFixed(0)} tokens/s`);
    console.log(`aerie / transformers (same work): ${(t.keep1_ms / aerieMs).toFixed(2)}x (goal >= 1.2x)`);
  } else {
    console.log(`transformers: ${(torch as { error: string }).error}`);
  }
  if (a.out) {
    writeFileSync(
      a.out,
      JSON.stringify(
        {
          bench: 'prefill',
          date: new Date().toISOString(),
          device: deviceName(DEVICE),
          config: { model: 'llama-3.1-8b shapes', dtype: 'bfloat16', batch: B, seq: L, taps, logitsRows: B, warmup: a.warmup, iters: a.iters },
          flops,
          weightBytes,
          peakBytes,
          aerie: { ms: aerieMs, tokens_per_s: tokps(aerieMs), tflops: tflops(aerieMs), all_ms: timing.all },
          torch,
          ratio: t ? { vs_keep1: t.keep1_ms / aerieMs, vs_full: t.full_ms !== null ? t.full_ms / aerieMs : null, meaning: 'torch ms / aerie ms (> 1: Aerie faster)' } : null,
        },
        null,
        2,
      ),
    );
  }
}

main();
