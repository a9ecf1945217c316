import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { native } from '../src/runtime/binding.js';
import { Tensor } from '../src/runtime/tensor.js';
import { DTYPE_CODE } from '../src/runtime/dtype.js';
import { runQkvCase, type QkvCase } from './helpers/fused_qkv_case.js';

const dev = 'cuda:0' as const;

/**
 * fusedQkvRotaryCache on CUDA: the qkv GEMV with the rotary epilogue (fused_gemv.cu, kRotary) must
 * equal fusedLinear -> qkvRotaryCache on CUDA bit for bit -- q, and both caches, including the rows
 * it must not touch (padding tokens, other slots). Shapes: small heads, and Llama-3.1-8B's (32 + 8 +
 * 8 heads of 128 from 4096), 1 to 4 tokens (the kernel's range), 5 (composed), Qwen3's q/k norms
 * (composed).
 */
describe.skipIf(!hasGpu)('fusedQkvRotaryCache on CUDA', () => {
  const cases: QkvCase[] = [
    { tokens: 1, heads: 4, kvHeads: 2, headDim: 64, k: 256, dtype: 'bfloat16', norm: true, bias: true },
    { tokens: 2, heads: 4, kvHeads: 2, headDim: 64, k: 256, dtype: 'bfloat16', norm: true, padToken: 0, out: true },
    { tokens: 3, heads: 6, kvHeads: 3, headDim: 32, k: 136, dtype: 'float16', bias: true },
    { tokens: 4, heads: 4, kvHeads: 1, headDim: 128, k: 512, dtype: 'bfloat16', padToken: 3 },
    { tokens: 1, heads: 32, kvHeads: 8, headDim: 128, k: 4096, dtype: 'bfloat16', norm: true },
    { tokens: 4, heads: 32, kvHeads: 8, headDim: 128, k: 4096, dtype: 'bfloat16', norm: true, bias: true },
    { tokens: 5, heads: 4, kvHeads: 2, headDim: 64, k: 256, dtype: 'bfloat16', norm: true },
    { tokens: 2, heads: 4, kvHeads: 2, headDim: 64, k: 256, dtype: 'bfloat16', norm: true, qkNorm: true },
  ];
  for (const c of cases) {
    it(`equals the composition bit for bit: ${JSON.stringify(c)}`, () => {
      expect(runQkvCase(c, dev, c.tokens * 31 + c.k)).toEqual({ q: -1, kCache: -1, vCache: -1 });
    });
  }

  it('the fused kernel takes 1 to 4 tokens and declines 5 (nothing written)', () => {
    const [heads, kvHeads, hd, k] = [4, 2, 64, 256];
    const nW = (heads + 2 * kvHeads) * hd;
    for (const T of [1, 4, 5]) {
      const x = Tensor.zeros([T, k], 'bfloat16', dev);
      const w = Tensor.zeros([nW, k], 'bfloat16', dev);
      const q = Tensor.fromArray(new Float32Array(T * heads * hd).fill(7), [T, heads, hd], { dtype: 'bfloat16', device: dev });
      const cache = Tensor.zeros([T, 4, kvHeads, hd], 'bfloat16', dev);
      const ids = Tensor.fromArray(Int32Array.from({ length: T }, (_, t) => t), [T], { dtype: 'int32', device: dev });
      const invFreq = Tensor.zeros([hd / 2], 'float32', dev);
      const done = native().fusedGemvRotaryCache(
        x.storage, w.storage, q.storage, null, null, cache.storage, cache.clone().storage, ids.storage, ids.storage, invFreq.storage,
        DTYPE_CODE.bfloat16, DTYPE_CODE.float32, DTYPE_CODE.float32, T, k, heads, kvHeads, hd, T, 4, 0, 1,
      );
      expect(done, `T = ${T}`).toBe(T <= 4);
      const qv = q.toFloat32Array();
      expect(qv.every((v) => v === (T <= 4 ? 0 : 7)), `q after T = ${T}`).toBe(true);
    }
  });
});
