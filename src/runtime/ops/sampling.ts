/**
 * Token selection: greedy argmax, and seeded sampling with per-request temperature, top-k and top-p
 * (Hugging Face semantics: temperature, then top-k keeping boundary ties, then top-p on the
 * renormalised distribution, at least one token kept). A request's draws are a function of
 * (seed, step) alone (Philox-4x32-10), and the CPU and CUDA kernels choose the same tokens.
 * samplingProbs gives the exact distribution `sample` draws from; samplingFilter_ masks logits in
 * place. See native/kernels/sampling.h for the algorithm.
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, rankIs, sameDevice, shapeIs } from '../check.js';
import type { Device } from '../device.js';
import { Tensor } from '../tensor.js';

/** Per-row parameters, one value per row of logits, on the logits' device. */
export interface SamplingParams {
  /** float32 [B]; <= 0 means greedy (argmax). */
  temperature: Tensor;
  /** int32 [B]; 0 (or >= vocab) turns top-k off. */
  topK: Tensor;
  /** float32 [B]; 1 turns top-p off. */
  topP: Tensor;
}

export interface SeededSamplingParams extends SamplingParams {
  /** int64 [B]: each request's generator seed (the bits of a uint64). */
  seeds: Tensor;
  /** int64 [B]: each request's draw counter; the same (seed, step) gives the same draw. */
  steps: Tensor;
}

export interface SamplingOptions {
  temperature: number | readonly number[];
  topK?: number | readonly number[];
  topP?: number | readonly number[];
  /** uint64 seeds (bigint, or numbers below 2^53). */
  seeds?: bigint | number | readonly (bigint | number)[];
  steps?: number | readonly number[];
}

function perRow<T>(op: string, name: string, v: T | readonly T[], batch: number): T[] {
  if (Array.isArray(v)) {
    if (v.length !== batch) fail(op, `${name} has ${v.length} values for ${batch} rows`);
    return [...v];
  }
  return new Array<T>(batch).fill(v as T);
}

/**
 * Builds parameter tensors for `batch` rows on `device` from numbers (a single value applies to
 * every row). Values are checked here: temperature >= 0, topK an integer >= 0, 0 < topP <= 1.
 */
export function samplingParams(options: SamplingOptions, batch: number, device: Device = 'cpu'): SeededSamplingParams {
  const op = 'samplingParams';
  const temperature = perRow(op, 'temperature', options.temperature, batch);
  const topK = perRow(op, 'topK', options.topK ?? 0, batch);
  const topP = perRow(op, 'topP', options.topP ?? 1, batch);
  const seeds = perRow<bigint | number>(op, 'seeds', options.seeds ?? 0, batch);
  const steps = perRow(op, 'steps', options.steps ?? 0, batch);
  temperature.forEach((t) => (Number.isFinite(t) && t >= 0) || fail(op, `temperature must be finite and >= 0, got ${t}`));
  topK.forEach((k) => (Number.isInteger(k) && k >= 0 && k < 2 ** 31) || fail(op, `topK must be an integer >= 0, got ${k}`));
  topP.forEach((p) => (p > 0 && p <= 1) || fail(op, `topP must be in (0, 1], got ${p}`));
  steps.forEach((s) => (Number.isSafeInteger(s) && s >= 0) || fail(op, `steps must be integers >= 0, got ${s}`));
  const seedBits = BigInt64Array.from(seeds, (s) => {
    const b = BigInt(s);
    if (b < 0n || b >= 2n ** 64n) fail(op, `seeds must be uint64 values, got ${s}`);
    return BigInt.asIntN(64, b);
  });
  return {
    temperature: Tensor.fromArray(temperature, [batch], { dtype: 'float32', device }),
    topK: Tensor.fromArray(topK, [batch], { dtype: 'int32', device }),
    topP: Tensor.fromArray(topP, [batch], { dtype: 'float32', device }),
    seeds: Tensor.fromArray(seedBits, [batch], { dtype: 'int64', device }),
    steps: Tensor.fromArray(steps, [batch], { dtype: 'int64', device }),
  };
}

/** Checks logits [B, V] and the per-row parameter tensors; returns [B, V]. */
function checkRows(op: string, logits: Tensor, p: SamplingParams, seeded: boolean): [number, number] {
  floating(op, 'logits', logits);
  rankIs(op, 'logits', logits, 2);
  const [rows, vocab] = logits.shape;
  if (vocab === 0 || vocab > 2 ** 23) fail(op, `logits is ${logits.describe()}; vocab must be in [1, 2^23]`);
  const named: [string, Tensor | undefined, 'float32' | 'int32' | 'int64'][] = [
    ['temperature', p.temperature, 'float32'],
    ['topK', p.topK, 'int32'],
    ['topP', p.topP, 'float32'],
  ];
  if (seeded) {
    const s = p as SeededSamplingParams;
    if (!s.seeds || !s.steps) fail(op, 'seeds and steps are required to sample');
    named.push(['seeds', s.seeds, 'int64'], ['steps', s.steps, 'int64']);
  }
  for (const [name, t, dtype] of named) {
    if (!t) fail(op, `${name} is missing`);
    dtypeIn(op, name, t, [dtype]);
    shapeIs(op, name, t, [rows]);
  }
  return [rows, vocab];
}

/**
 * logits [..., V] -> int32 [...]: the index of each row's largest value (lowest index on ties).
 * `out` (int32, logits' shape without the last dimension, same device): written instead of a new
 * tensor, e.g. the input ids of the next decode step.
 */
export function argmax(logits: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'argmax';
  sameDevice(op, { logits, out: opts.out });
  floating(op, 'logits', logits);
  if (logits.rank < 1) fail(op, `logits is ${logits.describe()}; expected at least one dimension`);
  const vocab = logits.shape[logits.rank - 1];
  if (vocab === 0) fail(op, `logits is ${logits.describe()}; the last dimension is empty`);
  const shape = logits.shape.slice(0, -1);
  if (opts.out) {
    dtypeIn(op, 'out', opts.out, ['int32']);
    shapeIs(op, 'out', opts.out, shape);
  }
  const out = opts.out ?? Tensor.empty(shape, 'int32', logits.device);
  try {
    native().argmax(logits.storage, logits.dtypeCode, out.numel, vocab, out.storage);
  } catch (e) {
    if (!opts.out) out.dispose();
    throw e;
  }
  return out;
}

/** One token per row of logits [B, V] -> int32 [B], drawn with each row's (seed, step). */
export function sample(logits: Tensor, p: SeededSamplingParams): Tensor {
  const op = 'sample';
  sameDevice(op, { logits, temperature: p.temperature, topK: p.topK, topP: p.topP, seeds: p.seeds, steps: p.steps });
  const [rows, vocab] = checkRows(op, logits, p, true);
  const out = Tensor.empty([rows], 'int32', logits.device);
  try {
    native().sample(logits.storage, logits.dtypeCode, rows, vocab, p.temperature.storage, p.topK.storage, p.topP.storage, p.seeds.storage,
      p.steps.storage, out.storage);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** float32 [B, V]: the exact distribution `sample` draws from (one-hot for greedy rows). */
export function samplingProbs(logits: Tensor, p: SamplingParams): Tensor {
  const op = 'samplingProbs';
  sameDevice(op, { logits, temperature: p.temperature, topK: p.topK, topP: p.topP });
  const [rows, vocab] = checkRows(op, logits, p, false);
  const probs = Tensor.empty([rows, vocab], 'float32', logits.device);
  try {
    native().samplingProbs(logits.storage, logits.dtypeCode, rows, vocab, p.temperature.storage, p.topK.storage, p.topP.storage, probs.storage);
  } catch (e) {
    probs.dispose();
    throw e;
  }
  return probs;
}

/**
 * In place: each surviving token's logit becomes logit / temperature (in logits' dtype), every other
 * one -inf; greedy rows keep only their argmax's logit. Returns logits.
 */
export function samplingFilter_(logits: Tensor, p: SamplingParams): Tensor {
  const op = 'samplingFilter_';
  sameDevice(op, { logits, temperature: p.temperature, topK: p.topK, topP: p.topP });
  const [rows, vocab] = checkRows(op, logits, p, false);
  native().samplingFilter(logits.storage, logits.dtypeCode, rows, vocab, p.temperature.storage, p.topK.storage, p.topP.storage);
  return logits;
}

/** Philox-4x32-10 of a 4-word counter under a 2-word key (32-bit words), exactly as the kernels use it. */
export function philox4x32(counter: readonly number[], key: readonly number[]): number[] {
  if (counter.length !== 4 || key.length !== 2) fail('philox4x32', 'counter takes 4 words and key 2');
  return native().philox4x32([...counter], [...key]);
}

