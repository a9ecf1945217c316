/**
 * Where a batch-1 decode step's GPU time goes (the embedding lookup left out) with the launches overlapped as in the real run
 * (CUDA graph, programmatic dependent launch): the fused decode layer of dense.ts (forwardFused)
 * rebuilt from the same runtime ops on Llama-3.1-8B shapes, with parts of it left out, each variant
 * captured as a graph and replayed. A part's cost in the pipeline is the step time with it minus
 * the step time without it; ncu (bench/profile_gpu.sh) times kernels one at a time instead, so it
 * cannot show what the overlap hides. The values computed are garbage once a part is missing (its
 * output is stale): only the times mean anything.
 *
 * Parts: qkv (rmsnorm + qkv GEMV + rotary + cache write), attn (paged attention, split + combine),
 * o (o GEMV + residual), gateup (rmsnorm + gate/up GEMV + SwiGLU), down (down GEMV + residual),
 * head (final norm + lm_head), argmax (of the logits, as generate's greedy steps end). A variant is
 * `all`, `all-attn-o` (all but those) or `qkv+o` (only those); `attn@N` sets attention's split
 * count (bench/decode_variants.ts).
 *
 *   node dist/bench/decode_parts.js [--context 256] [--rounds 3] [--variants all,all-attn,...]
 */
import { writeFileSync } from 'node:fs';
import { benchCommand, intAtLeast, parseBench } from './cli.js';
import { type Part, type Variant, parseVariant } from './decode_variants.js';
import { timeCudaAll } from './harness.js';
import { prefill } from '../src/models/batch.js';
import { DenseCausalLM, runtimeRope } from '../src/models/dense.js';
import { createCausalLM } from '../src/models/load.js';
import { presetConfig } from '../src/models/presets.js';
import { GATE_UP_LAYOUT, randomSource } from '../src/models/weights.js';
import { CudaGraph, cudaAvailable, cudaUnavailableReason, deviceName, synchronize } from '../src/runtime/cuda.js';
import { fusedLinear } from '../src/runtime/ops/fused_linear.js';
import { fusedQkvRotaryCache } from '../src/runtime/ops/fused_qkv.js';
import { pagedAttention } from '../src/runtime/ops/paged_attention.js';
import { argmax } from '../src/runtime/ops/sampling.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { tidy } from '../src/runtime/scope.js';
import { Tensor } from '../src/runtime/tensor.js';

const program = benchCommand('decode_parts', 'batch-1 decode step on Llama-3.1-8B shapes with parts left out, as CUDA graphs')
  .option('--context <n>', 'prompt tokens prefilled before the step', intAtLeast('--context', 1), 256)
  .option('--rounds <n>', 'interleaved rounds over the variants', intAtLeast('--rounds', 1), 3)
  .option('--variants <list>', 'comma-separated variants', 'all,all-attn,all-qkv,all-o,all-gateup,all-down,all-head,all-argmax,gateup+down,head');

interface Args {
  context: number;
  rounds: number;
  variants: string;
  torch: boolean;
  out?: string;
}

const DEVICE = 'cuda:0' as const;

function main(): void {
  const a = parseBench<Args>(program);
  if (!cudaAvailable()) throw new Error(`decode_parts needs a GPU: ${cudaUnavailableReason()}`);
  const variants = a.variants.split(',').map(parseVariant);
  const cfg = presetConfig('llama-3.1-8b');
  const source = randomSource({ seed: 2 });
  const model = createCausalLM(cfg, source, { device: DEVICE, dtype: 'bfloat16' });
  source.dispose();
  if (!(model instanceof DenseCausalLM)) throw new Error('decode_parts: expected the dense model');
  const blockSize = 16;
  const width = Math.ceil((a.context + 2) / blockSize);
  const cache = model.createKvCache({ numBlocks: width + 1, blockSize });
  let s = 11;
  const prompt = Array.from({ length: a.context }, () => ((s = (s * 1664525 + 1013904223) >>> 0), s % cfg.vocabSize));
  const seq = cache.newSequence();
  prefill(model, [{ ids: prompt, seq }], { cache }).logits?.dispose();
  const len = seq.length;
  cache.reserve(seq, len + 1);
  const table = new Int32Array(width);
  table.set(seq.blocks);
  const int32 = (v: ArrayLike<number>, shape: number[]) => Tensor.fromArray(Array.from(v), shape, { dtype: 'int32', device: DEVICE }).keep();
  const positions = int32([len], [1]);
  const slots = int32([cache.slot(seq, len)], [1]);
  const seqLens = int32([len + 1], [1]);
  const blockTable = int32(table, [1, width]);
  const rope = ropeInvFreq(runtimeRope(cfg));
  const invFreq = Tensor.fromArray(rope.invFreq, [rope.invFreq.length], { dtype: 'float32', device: DEVICE }).keep();
  const w = model.weights;
  const nH = model.numHeads;
  const hd = model.headDim;
  const eps = cfg.rmsNormEps;
  const logits = Tensor.zeros([1, model.vocabSize], 'float32', DEVICE).keep();
  const next = Tensor.zeros([1], 'int32', DEVICE).keep();
  // Persistent stand-ins for the outputs of parts that are left out.
  const xBuf = Tensor.zeros([1, model.hiddenSize], 'bfloat16', DEVICE).keep();
  const qBuf = Tensor.zeros([1, nH, hd], 'bfloat16', DEVICE).keep();
  const oBuf = Tensor.zeros([1, nH, hd], 'bfloat16', DEVICE).keep();
  const actBuf = Tensor.zeros([1, cfg.intermediateSize], 'bfloat16', DEVICE).keep();

  const step = (v: Variant) => () =>
    tidy(() => {
      const has = (p: Part) => v.parts.has(p);
      for (let l = 0; l < model.numLayers; l++) {
        const lw = w.layers[l];
        const at = lw.attn;
        tidy(() => {
          if (has('qkv')) {
            fusedQkvRotaryCache(xBuf, at.qkv, { norm: { weight: w.decodeNorms?.input[l] ?? lw.inputNorm, eps } }, positions, invFreq, {
              heads: nH,
              kvHeads: model.numKvHeads,
              headDim: hd,
              attentionScaling: rope.attentionScaling,
              eps,
              kCache: cache.k[l],
              vCache: cache.v[l],
              slotMapping: slots,
              out: qBuf,
            });
          }
          if (has('attn')) pagedAttention(qBuf, cache.k[l], cache.v[l], blockTable, seqLens, { out: oBuf, numSplits: v.splits });
          if (has('o')) fusedLinear(oBuf.reshape([1, nH * hd]), at.o, { residual: xBuf, out: xBuf, prefetchL2: true });
          if (has('gateup')) fusedLinear(xBuf, lw.gateUp, { norm: { weight: w.decodeNorms?.post[l] ?? lw.postNorm, eps }, swiglu: true, gateUpLayout: GATE_UP_LAYOUT, out: actBuf });
          if (has('down')) fusedLinear(actBuf, lw.down, { residual: xBuf, out: xBuf });
        });
      }
      if (has('head')) fusedLinear(xBuf, w.lmHead, { norm: { weight: w.decodeNorms?.final ?? w.norm, eps }, outDType: 'float32', out: logits });
      if (has('argmax')) argmax(logits, { out: next });
    });

  const graphs = variants.map((v) => {
    const fn = step(v);
    fn();
    return CudaGraph.capture(DEVICE, fn);
  });
  synchronize(DEVICE);
  const times: number[][] = variants.map(() => []);
  for (let r = 0; r < a.rounds; r++) {
    graphs.forEach((g, i) => times[i].push(timeCudaAll(() => g.replay(), { warmup: 3, iters: 30, device: DEVICE }).median));
  }
  const median = (xs: number[]) => {
    const v = [...xs].sort((p, q) => p - q);
    const mid = v.length >> 1;
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  };
  const base = variants.findIndex((v) => v.name === 'all');
  console.log(`decode_parts: Llama-3.1-8B shapes, batch 1, context ${a.context}, ${deviceName(DEVICE)}; median replay of ${a.rounds} interleaved rounds`);
  variants.forEach((v, i) => {
    const ms = median(times[i]);
    const diff = base >= 0 && i !== base ? `  (all minus this: ${(median(times[base]) - ms).toFixed(3)} ms)` : '';
    console.log(`${v.name.padEnd(24)} ${ms.toFixed(3)} ms  [${times[i].map((t) => t.toFixed(3)).join(' ')}]${diff}`);
  });
  if (a.out) {
    const rows = variants.map((v, i) => ({ variant: v.name, parts: [...v.parts], splits: v.splits ?? null, step_ms: median(times[i]), rounds_ms: times[i] }));
    writeFileSync(a.out, JSON.stringify({ bench: 'decode_parts', date: new Date().toISOString(), device: deviceName(DEVICE), context: a.context, variants: rows }, null, 2));
  }
  for (const g of graphs) g.destroy();
  for (const t of [positions, slots, seqLens, blockTable, invFreq, logits, next, xBuf, qBuf, oBuf, actBuf]) t.dispose();
  cache.dispose();
  model.dispose();
}

main();
