/**
 * Host-side batching over a CausalLM: builds the int32 inputs of one forward step from token lists
 * (packed ids, positions, cu_seqlens, slot mapping, block table, lengths), uploads them, runs the
 * step and says which sequence and position each logits row belongs to.
 *
 *   prefill(model, [{ids: [...]}, {ids: [...], logits: 'all'}], {cache, taps: [2, 16, 29, 32]})
 *   decodeStep(model, cache, seqs, [[t0], [t1]])
 *
 * Prefill packs the sequences back to back (each starts at position 0); with a cache, each sequence's
 * K/V are written to its KvSequence (which must be empty). A decode step adds Q tokens to each of B
 * sequences (the same Q for all) and attends over the cache.
 */
import type { CausalLM, ForwardOutput } from './causal_lm.js';
import type { KvSequence, PagedKvCache } from './kv_cache.js';
import { tidy } from '../runtime/scope.js';
import { Tensor } from '../runtime/tensor.js';

export type LogitsSelection = 'last' | 'all' | 'none' | readonly number[];

export interface PrefillSequence {
  ids: readonly number[];
  /** Where this sequence's K/V go (an empty sequence of the cache passed in the options). */
  seq?: KvSequence;
  /** Positions whose logits are wanted (default 'last'). */
  logits?: LogitsSelection;
}

export interface StepOptions {
  taps?: readonly number[];
}

export interface PrefillOptions extends StepOptions {
  cache?: PagedKvCache;
}

export interface LogitsRow {
  /** Index of the sequence in the step's list. */
  sequence: number;
  /** Position within that sequence. */
  position: number;
}

export interface StepResult extends ForwardOutput {
  /** What each logits row is. */
  rows: LogitsRow[];
  /** Index in T of each sequence's first token of this step (T last). */
  offsets: number[];
}

function selectPositions(sel: LogitsSelection | undefined, start: number, count: number, what: string): number[] {
  const s = sel ?? 'last';
  if (s === 'none' || count === 0) return [];
  if (s === 'last') return [start + count - 1];
  if (s === 'all') return Array.from({ length: count }, (_, i) => start + i);
  for (const p of s) {
    if (!Number.isInteger(p) || p < start || p >= start + count) throw new RangeError(`${what}: logits position ${p} is outside [${start}, ${start + count})`);
  }
  return [...s];
}

function int32(data: ArrayLike<number>, model: CausalLM): Tensor {
  return Tensor.fromArray(data instanceof Int32Array ? data : Int32Array.from(data), [data.length], { dtype: 'int32', device: model.device });
}

/** Prefill of packed sequences that start at position 0. */
export function prefill(model: CausalLM, seqs: readonly PrefillSequence[], options: PrefillOptions = {}): StepResult {
  const op = 'prefill';
  if (seqs.length === 0) throw new RangeError(`${op}: no sequences`);
  const total = seqs.reduce((s, q) => s + q.ids.length, 0);
  const ids = new Int32Array(total);
  const positions = new Int32Array(total);
  const cu = new Int32Array(seqs.length + 1);
  const rows: LogitsRow[] = [];
  const rowIndex: number[] = [];
  const offsets: number[] = [];
  const cache = options.cache;
  const slots = cache ? new Int32Array(total).fill(-1) : null;
  let t = 0;
  seqs.forEach((s, i) => {
    if (s.ids.length === 0) throw new RangeError(`${op}: sequence ${i} is empty`);
    offsets.push(t);
    for (let j = 0; j < s.ids.length; j++) {
      const id = s.ids[j];
      if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) throw new RangeError(`${op}: sequence ${i} token ${j} is ${id}, outside the vocabulary of ${model.vocabSize}`);
      ids[t + j] = id;
      positions[t + j] = j;
    }
    if (s.seq) {
      if (!cache) throw new TypeError(`${op}: sequence ${i} has a KV sequence but no cache was given`);
      if (s.seq.length !== 0) throw new Error(`${op}: KV sequence ${s.seq.id} already holds ${s.seq.length} tokens (prefill starts at position 0; continue with decodeStep)`);
      cache.reserve(s.seq, s.ids.length);
      cache.slots(s.seq, 0, s.ids.length, slots!, t);
    }
    for (const p of selectPositions(s.logits, 0, s.ids.length, `${op}: sequence ${i}`)) {
      rows.push({ sequence: i, position: p });
      rowIndex.push(t + p);
    }
    t += s.ids.length;
    cu[i + 1] = t;
  });
  offsets.push(t);
  const out = tidy(() =>
    model.forward({
      ids: int32(ids, model),
      positions: int32(positions, model),
      attention: { kind: 'prefill', cuSeqlens: int32(cu, model) },
      kv: cache && slots ? { cache, slotMapping: int32(slots, model) } : undefined,
      logitRows: rowIndex.length ? int32(rowIndex, model) : undefined,
      taps: options.taps,
    }),
  );
  seqs.forEach((s) => {
    if (s.seq) s.seq.length = s.ids.length;
  });
  return { ...out, rows, offsets };
}

export interface DecodeOptions extends StepOptions {
  /** Positions (of the new tokens) whose logits are wanted, per sequence (default 'all'). */
  logits?: LogitsSelection;
  /** Block table width (default: the longest block list). */
  blockTableWidth?: number;
}

/**
 * Appends tokens[b] (Q tokens, the same Q for every sequence) to each sequence in the cache and
 * attends over the cache. Logits rows default to every new token.
 */
export function decodeStep(
  model: CausalLM,
  cache: PagedKvCache,
  seqs: readonly KvSequence[],
  tokens: readonly (readonly number[])[],
  options: DecodeOptions = {},
): StepResult {
  const op = 'decodeStep';
  if (seqs.length === 0 || seqs.length !== tokens.length) throw new RangeError(`${op}: ${seqs.length} sequences but ${tokens.length} token lists`);
  const Q = tokens[0].length;
  if (Q === 0 || tokens.some((t) => t.length !== Q)) throw new RangeError(`${op}: every sequence must get the same number (>= 1) of tokens`);
  const B = seqs.length;
  const T = B * Q;
  const ids = new Int32Array(T);
  const positions = new Int32Array(T);
  const slots = new Int32Array(T);
  const seqLens = new Int32Array(B);
  const rows: LogitsRow[] = [];
  const rowIndex: number[] = [];
  const offsets: number[] = [];
  seqs.forEach((s, b) => {
    const start = s.length;
    cache.reserve(s, start + Q);
    cache.slots(s, start, Q, slots, b * Q);
    offsets.push(b * Q);
    for (let j = 0; j < Q; j++) {
      const id = tokens[b][j];
      if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) throw new RangeError(`${op}: sequence ${b} token ${j} is ${id}, outside the vocabulary of ${model.vocabSize}`);
      ids[b * Q + j] = id;
      positions[b * Q + j] = start + j;
    }
    seqLens[b] = start + Q;
    for (const p of selectPositions(options.logits ?? 'all', start, Q, `${op}: sequence ${b}`)) {
      rows.push({ sequence: b, position: p });
      rowIndex.push(b * Q + (p - start));
    }
  });
  offsets.push(T);
  const table = cache.blockTable(seqs, options.blockTableWidth);
  const out = tidy(() =>
    model.forward({
      ids: int32(ids, model),
      positions: int32(positions, model),
      attention: {
        kind: 'paged',
        blockTable: Tensor.fromArray(table.data, [B, table.width], { dtype: 'int32', device: model.device }),
        seqLens: int32(seqLens, model),
        queries: Q,
      },
      kv: { cache, slotMapping: int32(slots, model) },
      logitRows: rowIndex.length === T && rowIndex.every((r, i) => r === i) ? 'all' : rowIndex.length ? int32(rowIndex, model) : undefined,
      taps: options.taps,
    }),
  );
  seqs.forEach((s) => (s.length += Q));
  return { ...out, rows, offsets };
}
