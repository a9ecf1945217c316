/**
 * Generation: prefill the prompts (packed, one step), then decode one token per sequence per step
 * over the paged KV cache until each sequence stops.
 *
 * - Greedy (temperature 0, the default) takes the argmax (lowest id on ties, as torch.argmax).
 * - Sampling (temperature > 0, optional top-k / top-p, Hugging Face order) is seeded per request:
 *   request i draws with seed (seed + i) at step = the number of tokens it has generated, so its
 *   tokens do not depend on what else is in the batch (src/runtime/ops/sampling.ts).
 * - A sequence stops after an end-of-sequence token (config.json / generation_config.json's
 *   eos_token_id, unless ignoreEos) or a stop token, which are kept in its output as transformers
 *   does, or after maxNewTokens.
 * - Decode steps keep the batch's shape as sequences finish (finished rows become padding), so on
 *   CUDA one captured graph serves every step (DecodeRunner); elsewhere, or with cudaGraph false,
 *   the same fixed-shape step runs eagerly. Greedy decoding queues each step before reading the
 *   previous one's tokens back (GreedyDecodePipeline: two runners, so two graphs); a row that stops
 *   on EOS or a stop token then costs one wasted step, whose result is dropped.
 */
import type { CausalLM } from './causal_lm.js';
import { prefill } from './batch.js';
import { GreedyDecodePipeline } from './decode_pipeline.js';
import { DecodeRunner } from './decode_runner.js';
import type { KvSequence } from './kv_cache.js';
import { argmax, sample, samplingParams } from '../runtime/ops/sampling.js';
import { synchronize } from '../runtime/cuda.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';

export interface GenerateOptions {
  /** Most tokens to generate per prompt (default 128). */
  maxNewTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  /** 0 (default): off. */
  topK?: number;
  /** 1 (default): off. */
  topP?: number;
  /** Request i uses seed + i (default seed 0). */
  seed?: number | bigint;
  /** Stop tokens besides the EOS ones (kept in the output). */
  stopTokenIds?: readonly number[];
  /** Default: the config's eos_token_id(s). */
  eosTokenIds?: readonly number[];
  /** Do not stop at EOS tokens (stop tokens still stop). */
  ignoreEos?: boolean;
  /** KV cache block size (default 16). */
  blockSize?: number;
  /** Replay decode steps as a CUDA graph (CUDA only; default true there unless AERIE_CUDA_GRAPHS=0). */
  cudaGraph?: boolean;
  /** Called with each new token as it is chosen. */
  onToken?: (request: number, token: number) => void;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  /** Generated tokens per prompt (the stopping token included). */
  tokens: number[][];
  finishReasons: FinishReason[];
  promptTokens: number;
  generatedTokens: number;
  prefillMs: number;
  decodeMs: number;
  decodeSteps: number;
}

export function generate(model: CausalLM, prompts: readonly (readonly number[])[], options: GenerateOptions = {}): GenerateResult {
  const maxNew = options.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNew}`);
  if (prompts.length === 0) throw new RangeError('generate: no prompts');
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`generate: prompt ${i} is empty`);
  });
  const B = prompts.length;
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0)) throw new RangeError(`generate: temperature must be >= 0, got ${temperature}`);
  const eos = new Set(options.ignoreEos ? [] : (options.eosTokenIds ?? model.config.eosTokenIds));
  const stop = new Set(options.stopTokenIds ?? []);
  const seed = BigInt(options.seed ?? 0);
  const tokens: number[][] = prompts.map(() => []);
  const finish: (FinishReason | null)[] = prompts.map(() => null);
  const promptTokens = prompts.reduce((s, p) => s + p.length, 0);
  const result = (prefillMs: number, decodeMs: number, decodeSteps: number): GenerateResult => ({
    tokens,
    finishReasons: finish.map((f) => f ?? 'length'),
    promptTokens,
    generatedTokens: tokens.reduce((s, t) => s + t.length, 0),
    prefillMs,
    decodeMs,
    decodeSteps,
  });
  if (maxNew === 0) return result(0, 0, 0);

  /** Tokens for logits rows [R, V], row r belonging to request requests[r]. */
  const choose = (logits: Tensor, requests: readonly number[]): number[] =>
    tidy(() => {
      if (temperature === 0) return argmax(logits).toNumbers();
      const p = samplingParams(
        {
          temperature,
          topK: options.topK ?? 0,
          topP: options.topP ?? 1,
          seeds: requests.map((r) => BigInt.asUintN(64, seed + BigInt(r))),
          steps: requests.map((r) => tokens[r].length),
        },
        requests.length,
        model.device,
      );
      return sample(logits, p).toNumbers();
    });
  /** Appends a chosen token; returns whether the request goes on. */
  const accept = (r: number, tok: number): boolean => {
    tokens[r].push(tok);
    options.onToken?.(r, tok);
    if (eos.has(tok)) finish[r] = 'eos';
    else if (stop.has(tok)) finish[r] = 'stop';
    else if (tokens[r].length >= maxNew) finish[r] = 'length';
    return finish[r] === null;
  };

  const blockSize = options.blockSize ?? 16;
  const maxLens = prompts.map((p) => p.length + maxNew);
  const blocks = maxLens.map((n) => Math.ceil(n / blockSize));
  const cache = model.createKvCache({ numBlocks: blocks.reduce((a, b) => a + b, 0), blockSize });
  let runner: DecodeRunner | null = null;
  let pipeline: GreedyDecodePipeline | null = null;
  try {
    const seqs: KvSequence[] = prompts.map(() => cache.newSequence());
    const t0 = performance.now();
    const pre = prefill(model, prompts.map((ids, i) => ({ ids, seq: seqs[i], logits: 'last' as const })), { cache });
    let next: number[];
    try {
      next = choose(pre.logits!, pre.rows.map((r) => r.sequence));
    } finally {
      pre.logits?.dispose();
    }
    const t1 = performance.now();
    let alive = next.map((tok, r) => accept(r, tok));
    let steps = 0;
    if (alive.some((a) => a) && temperature === 0) {
      // Greedy: the host runs one step behind the device (GreedyDecodePipeline); same tokens.
      pipeline = new GreedyDecodePipeline(model, cache, B, Math.max(...blocks), { graph: options.cudaGraph });
      steps = pipeline.run(seqs, next, alive.map((a, r) => (a ? maxNew - tokens[r].length : 0)), accept);
    } else if (alive.some((a) => a)) {
      runner = new DecodeRunner(model, cache, B, Math.max(...blocks), { graph: options.cudaGraph });
      while (alive.some((a) => a)) {
        const rows = seqs.map((s, r) => (alive[r] ? s : null));
        const logits = runner.step(rows, next.map((t, r) => (alive[r] ? t : 0)));
        const requests = [...Array(B).keys()];
        next = choose(logits, requests);
        alive = alive.map((a, r) => a && accept(r, next[r]));
        steps++;
      }
    }
    synchronize(model.device);
    return result(t1 - t0, performance.now() - t1, steps);
  } finally {
    runner?.dispose();
    pipeline?.dispose();
    cache.dispose();
  }
}
