/**
 * Test fixtures and float64 references of the paged_attention family: a paged KV cache filled
 * through cacheWrite from contiguous per-sequence K/V, and attention computed two ways (query by
 * query over the visible keys; prefill-style over the full causal score matrix).
 */
import { Tensor } from '../../src/runtime/tensor.js';
import { floatToF16Bits, f16BitsToFloat } from '../../src/runtime/dtype.js';
import { cacheWrite } from '../../src/runtime/ops/paged_attention.js';
import { type Rng, roundBf16 } from './random.js';

export type FloatDType = 'float32' | 'bfloat16' | 'float16';

export const roundTo = (v: Float32Array, dtype: FloatDType): Float32Array =>
  dtype === 'bfloat16' ? roundBf16(v) : dtype === 'float16' ? f16BitsToFloat(floatToF16Bits(v)) : Float32Array.from(v);

export interface CaseSpec {
  lens: number[];
  queries: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  blockSize: number;
  window?: number;
  dtype?: FloatDType;
  /** blocks beyond those the sequences use (default 3) */
  spareBlocks?: number;
  /** block-table columns beyond the longest sequence's (default 1) */
  spareColumns?: number;
}

export interface PagedCase {
  spec: CaseSpec;
  /** per sequence: [len, kvHeads, hd] */
  keys: Float32Array[];
  values: Float32Array[];
  /** per sequence: [len, heads, hd], every position's query (the paged call uses the last Q) */
  qAll: Float32Array[];
  /** the single cacheWrite call that filled the caches: [T, kvHeads, hd] rows and int32 [T] slots */
  writeK: Tensor;
  writeV: Tensor;
  slots: Tensor;
  kCache: Tensor;
  vCache: Tensor;
  blockTable: Tensor;
  seqLens: Tensor;
  /** [B, Q, heads, hd] */
  q: Tensor;
}

/** A cache of `shape` whose every byte is 0xff: NaN in f32, bf16 and f16, so reading it poisons. */
export function nanCache(shape: number[], dtype: FloatDType, device: Tensor['device'] = 'cpu'): Tensor {
  const t = Tensor.empty(shape, dtype, device);
  t.storage.fill(0xff);
  return t;
}

/**
 * Fills CPU caches through one cacheWrite: shuffled block ids per sequence, the tokens of all
 * sequences with a padding row (slot -1) after every 5th, unused slots left NaN. Unused block-table
 * columns are -1.
 */
export function buildCase(rng: Rng, spec: CaseSpec): PagedCase {
  const { lens, queries: Q, heads, kvHeads, headDim: hd, blockSize: bs } = spec;
  const dtype = spec.dtype ?? 'float32';
  const B = lens.length;
  const blocksPer = lens.map((l) => Math.ceil(l / bs));
  const maxBlocks = Math.max(1, ...blocksPer) + (spec.spareColumns ?? 1);
  const numBlocks = blocksPer.reduce((a, b) => a + b, 0) + (spec.spareBlocks ?? 3);
  const perm = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = numBlocks - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const table = new Int32Array(B * maxBlocks).fill(-1);
  let next = 0;
  for (let b = 0; b < B; b++) for (let i = 0; i < blocksPer[b]; i++) table[b * maxBlocks + i] = perm[next++];

  const row = kvHeads * hd;
  const keys = lens.map((l) => roundTo(rng.normal(l * row), dtype));
  const values = lens.map((l) => roundTo(rng.normal(l * row), dtype));
  const qAll = lens.map((l) => roundTo(rng.normal(l * heads * hd), dtype));

  const total = lens.reduce((a, b) => a + b, 0);
  const T = total + Math.floor(total / 5);
  const slots = new Int32Array(T);
  const kRows = new Float32Array(T * row);
  const vRows = new Float32Array(T * row);
  let n = 0;
  let real = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < lens[b]; i++) {
      slots[n] = table[b * maxBlocks + Math.floor(i / bs)] * bs + (i % bs);
      kRows.set(keys[b].subarray(i * row, (i + 1) * row), n * row);
      vRows.set(values[b].subarray(i * row, (i + 1) * row), n * row);
      n++;
      if (++real % 5 === 0) {
        slots[n] = -1;
        kRows.set(rng.normal(row), n * row);
        vRows.set(rng.normal(row), n * row);
        n++;
      }
    }
  }
  const kCache = nanCache([numBlocks, bs, kvHeads, hd], dtype);
  const vCache = nanCache([numBlocks, bs, kvHeads, hd], dtype);
  const writeK = Tensor.fromArray(kRows, [T, kvHeads, hd], { dtype });
  const writeV = Tensor.fromArray(vRows, [T, kvHeads, hd], { dtype });
  const slotT = Tensor.fromArray(slots, [T]);
  cacheWrite(kCache, vCache, writeK, writeV, slotT);

  const qv = new Float32Array(B * Q * heads * hd);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Q; t++) {
      const p = lens[b] - Q + t;
      const dst = (b * Q + t) * heads * hd;
      if (p >= 0) qv.set(qAll[b].subarray(p * heads * hd, (p + 1) * heads * hd), dst);
      else qv.set(roundTo(rng.normal(heads * hd), dtype), dst); // a query with no keys
    }
  }
  return {
    spec, keys, values, qAll, writeK, writeV, slots: slotT, kCache, vCache,
    blockTable: Tensor.fromArray(table, [B, maxBlocks]),
    seqLens: Tensor.fromArray(Int32Array.from(lens), [B]),
    q: Tensor.fromArray(qv, [B, Q, heads, hd], { dtype }),
  };
}

/** float64 decode-style reference: each query row against its visible keys. Rows with none are 0. */
export function decodeRef(c: PagedCase, scale: number): Float64Array {
  const { lens, queries: Q, heads, kvHeads, headDim: hd } = c.spec;
  const window = c.spec.window ?? 0;
  const q = c.q.toArray() as Float32Array;
  const out = new Float64Array(q.length);
  const group = heads / kvHeads;
  for (let b = 0; b < lens.length; b++) {
    for (let t = 0; t < Q; t++) {
      const p = lens[b] - Q + t;
      const lo = window > 0 ? Math.max(0, p - window + 1) : 0;
      for (let h = 0; h < heads; h++) {
        const qo = ((b * Q + t) * heads + h) * hd;
        const kvh = Math.floor(h / group);
        const scores: number[] = [];
        for (let j = lo; j <= p; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * c.keys[b][(j * kvHeads + kvh) * hd + d];
          scores.push(s * scale);
        }
        if (scores.length === 0) continue;
        const m = Math.max(...scores);
        const w = scores.map((s) => Math.exp(s - m));
        const z = w.reduce((a, v) => a + v, 0);
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = lo; j <= p; j++) acc += w[j - lo] * c.values[b][(j * kvHeads + kvh) * hd + d];
          out[qo + d] = acc / z;
        }
      }
    }
  }
  return out;
}

/**
 * float64 prefill-style causal attention over one contiguous sequence: the full [len, len] score
 * matrix per head, masked with -inf (future keys, and keys `window` or more behind), softmax by
 * rows, times V. Returns [len, heads, hd].
 */
export function prefillRef(qAll: Float32Array, k: Float32Array, v: Float32Array, len: number, heads: number, kvHeads: number, hd: number, scale: number, window: number): Float64Array {
  const out = new Float64Array(len * heads * hd);
  const group = heads / kvHeads;
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < len; i++) {
      const row = new Float64Array(len);
      for (let j = 0; j < len; j++) {
        if (j > i || (window > 0 && i - j >= window)) {
          row[j] = -Infinity;
          continue;
        }
        let s = 0;
        for (let d = 0; d < hd; d++) s += qAll[(i * heads + h) * hd + d] * k[(j * kvHeads + kvh) * hd + d];
        row[j] = s * scale;
      }
      let m = -Infinity;
      for (const s of row) m = Math.max(m, s);
      let z = 0;
      for (let j = 0; j < len; j++) z += Math.exp(row[j] - m);
      for (let d = 0; d < hd; d++) {
        let acc = 0;
        for (let j = 0; j < len; j++) acc += (Math.exp(row[j] - m) / z) * v[(j * kvHeads + kvh) * hd + d];
        out[(i * heads + h) * hd + d] = acc;
      }
    }
  }
  return out;
}

/** max over elements of |got - ref| - rel |ref| (Infinity on NaN): below `abs` means within tolerance. */
export function excessError(got: ArrayLike<number>, ref: ArrayLike<number>, rel: number): number {
  if (got.length !== ref.length) throw new Error(`excessError: lengths differ (${got.length} vs ${ref.length})`);
  let worst = -Infinity;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e - rel * Math.abs(ref[i]));
  }
  return worst;
}
