import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { fusedQkvRotaryCache } from '../src/runtime/ops/fused_qkv.js';
import { runQkvCase, type QkvCase } from './helpers/fused_qkv_case.js';

/**
 * fusedQkvRotaryCache on the CPU: the native twin (fused_gemv_cpu.cc with the rotary epilogue) must
 * equal fusedLinear -> qkvRotaryCache bit for bit: q, and the k and v caches (including the rows it
 * must leave alone: padding tokens and every other slot).
 */
describe('fusedQkvRotaryCache on the CPU', () => {
  const cases: QkvCase[] = [
    { tokens: 1, heads: 4, kvHeads: 2, headDim: 16, k: 64, dtype: 'float32', norm: true, bias: true },
    { tokens: 3, heads: 4, kvHeads: 2, headDim: 16, k: 64, dtype: 'bfloat16', norm: true, padToken: 1 },
    { tokens: 2, heads: 3, kvHeads: 1, headDim: 8, k: 40, dtype: 'float16', bias: true, out: true },
    { tokens: 5, heads: 4, kvHeads: 2, headDim: 16, k: 64, dtype: 'bfloat16', norm: true },
    { tokens: 2, heads: 4, kvHeads: 2, headDim: 16, k: 64, dtype: 'bfloat16', norm: true, qkNorm: true },
  ];
  for (const c of cases) {
    it(`equals the composition bit for bit: ${JSON.stringify(c)}`, () => {
      expect(runQkvCase(c, 'cpu')).toEqual({ q: -1, kCache: -1, vCache: -1 });
    });
  }

  it('a weight of the wrong height gets qkvRotaryCache error for the product', () => {
    const x = Tensor.zeros([1, 8]);
    const w = Tensor.zeros([7 * 4 + 1, 8]);
    const cache = Tensor.zeros([2, 4, 2, 4]);
    const run = () =>
      fusedQkvRotaryCache(x, w, {}, Tensor.fromArray([0], [1], { dtype: 'int32' }), Tensor.zeros([2]), {
        heads: 3,
        kvHeads: 2,
        headDim: 4,
        kCache: cache,
        vCache: cache.clone(),
        slotMapping: Tensor.fromArray([0], [1], { dtype: 'int32' }),
      });
    expect(run).toThrow(/qkvRotaryCache: qkv is .*expected \[T, 28\] for 3 \+ 2 x 2 heads of 4/);
  });
});
