/**
 * One fusedQkvRotaryCache problem, run both fused and as the composition it must equal
 * (fusedLinear -> qkvRotaryCache) on fresh copies of the same caches; returns the first differing
 * byte of q, the k cache and the v cache (-1: identical).
 */
import type { Device } from '../../src/runtime/device.js';
import type { DType } from '../../src/runtime/dtype.js';
import { fusedLinear } from '../../src/runtime/ops/fused_linear.js';
import { fusedQkvRotaryCache } from '../../src/runtime/ops/fused_qkv.js';
import { qkvRotaryCache } from '../../src/runtime/ops/qkv_rotary.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { firstByteDifference } from './compare.js';
import { Rng } from './random.js';

export interface QkvCase {
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  k: number;
  dtype: DType;
  norm?: boolean;
  bias?: boolean;
  /** Slot -1 for this token (padding): no cache write. */
  padToken?: number;
  /** Pass q's output tensor (as CUDA graphs do). */
  out?: boolean;
  /** Qwen3's per-head norms: the op then composes everywhere. */
  qkNorm?: boolean;
}

export interface QkvResult {
  q: number;
  kCache: number;
  vCache: number;
}

export function runQkvCase(c: QkvCase, device: Device, seed = 1): QkvResult {
  const rng = new Rng(seed);
  const nW = (c.heads + 2 * c.kvHeads) * c.headDim;
  const up = (v: ArrayLike<number>, shape: number[], dtype: DType) => Tensor.fromArray(v, shape, { dtype, device });
  const x = up(rng.uniform(c.tokens * c.k, -2, 2), [c.tokens, c.k], c.dtype);
  const w = up(rng.uniform(nW * c.k, -0.2, 0.2), [nW, c.k], c.dtype);
  const bias = c.bias ? up(rng.uniform(nW, -0.5, 0.5), [nW], c.dtype) : undefined;
  const normW = c.norm ? up(rng.uniform(c.k, 0.5, 1.5), [c.k], c.dtype) : undefined;
  const half = c.headDim / 2;
  const invFreq = up(Float32Array.from({ length: half }, (_, i) => 500000 ** (-i / half)), [half], 'float32');
  const positions = up(Int32Array.from({ length: c.tokens }, (_, t) => 37 + 1000 * t), [c.tokens], 'int32');
  const blockSize = 4;
  const numBlocks = c.tokens + 2;
  const slots = Int32Array.from({ length: c.tokens }, (_, t) => (t === c.padToken ? -1 : 3 * t + 1));
  const slotMapping = up(slots, [c.tokens], 'int32');
  const cacheShape = [numBlocks, blockSize, c.kvHeads, c.headDim];
  const cacheInit = rng.uniform(numBlocks * blockSize * c.kvHeads * c.headDim);
  const caches = () => ({ k: up(cacheInit, cacheShape, c.dtype), v: up(cacheInit, cacheShape, c.dtype) });
  const qkNorms = c.qkNorm
    ? { qNorm: up(rng.uniform(c.headDim, 0.5, 1.5), [c.headDim], c.dtype), kNorm: up(rng.uniform(c.headDim, 0.5, 1.5), [c.headDim], c.dtype) }
    : {};
  const linearOpts = { norm: normW ? { weight: normW, eps: 1e-5 } : undefined, bias };
  const rot = (kv: { k: Tensor; v: Tensor }) => ({
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    attentionScaling: 1.25,
    eps: 1e-6,
    kCache: kv.k,
    vCache: kv.v,
    slotMapping,
    ...qkNorms,
    out: c.out ? Tensor.empty([c.tokens, c.heads, c.headDim], c.dtype, device) : undefined,
  });
  const fusedKv = caches();
  const q = fusedQkvRotaryCache(x, w, linearOpts, positions, invFreq, rot(fusedKv));
  const refKv = caches();
  const qkv = fusedLinear(x, w, linearOpts);
  const qRef = qkvRotaryCache(qkv, positions, invFreq, rot(refKv));
  const bytes = (t: Tensor) => t.storage.read(0, t.byteLength);
  const result = {
    q: firstByteDifference(bytes(q), bytes(qRef)),
    kCache: firstByteDifference(bytes(fusedKv.k), bytes(refKv.k)),
    vCache: firstByteDifference(bytes(fusedKv.v), bytes(refKv.v)),
  };
  for (const t of [x, w, bias, normW, invFreq, positions, slotMapping, q, qRef, qkv, fusedKv.k, fusedKv.v, refKv.k, refKv.v, ...Object.values(qkNorms)]) t?.dispose();
  return result;
}
