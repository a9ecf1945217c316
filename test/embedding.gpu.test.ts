import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { firstByteDifference } from './helpers/compare.js';
import { Tensor } from '../src/runtime/tensor.js';
import { embedding, embeddingBackward, embeddingGrad } from '../src/runtime/ops/embedding.js';
import { maxAbsError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

const dev = 'cuda:0' as const;

describe.skipIf(!hasGpu)('embedding (CUDA vs CPU twin)', () => {
  const rng = new Rng(5);

  // hidden sizes: rows of 16-byte units (4096 bf16), 4-byte units (6 bf16 = 12 bytes), 2-byte
  // units (odd bf16), and an f32 row that is not a multiple of 16 bytes (13 floats)
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    for (const H of [4096, 6, 13]) {
      for (const idType of ['int32', 'int64'] as const) {
        it(`forward copies rows bit for bit (${dtype}, hidden ${H}, ${idType} ids)`, () => {
          const V = 301, T = 257;
          const weight = Tensor.fromArray(rng.normal(V * H), [V, H], { dtype });
          const ids = Tensor.fromArray(rng.int(T, 0, V), [T], { dtype: idType });
          const cpu = embedding(weight, ids);
          const gpu = embedding(weight.to(dev), ids.to(dev));
          expect(gpu.shape).toEqual([T, H]);
          expect(firstByteDifference(gpu.storage.read(), cpu.storage.read())).toBe(-1);
        });
      }
    }
  }

  it('forward writes zero rows for out-of-range ids (no host sync to report them)', () => {
    const V = 10, H = 16;
    const weight = Tensor.fromArray(rng.normal(V * H), [V, H], { device: dev });
    const out = embedding(weight, Tensor.fromArray([3, 10, -1, 9, 2 ** 40], [5], { dtype: 'int64', device: dev })).toArray() as Float32Array;
    const w = weight.toArray() as Float32Array;
    expect(Array.from(out.subarray(0, H))).toEqual(Array.from(w.subarray(3 * H, 4 * H)));
    expect(Array.from(out.subarray(H, 3 * H)).every((v) => v === 0)).toBe(true);
    expect(Array.from(out.subarray(3 * H, 4 * H))).toEqual(Array.from(w.subarray(9 * H, 10 * H)));
    expect(Array.from(out.subarray(4 * H)).every((v) => v === 0)).toBe(true);
  });

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    for (const [V, H, T] of [[50, 4096, 1000], [7, 13, 333], [1, 5, 64]]) {
      it(`backward scatter-add matches the CPU twin (${dtype} dout, vocab ${V}, hidden ${H}, ${T} tokens)`, () => {
        const ids = Tensor.fromArray(rng.int(T, 0, V), [T]);
        const dout = Tensor.fromArray(rng.normal(T * H), [T, H], { dtype });
        const init = rng.normal(V * H);
        const cpu = embeddingBackward(dout, ids, Tensor.fromArray(init, [V, H])).toArray() as Float32Array;
        const gpu = embeddingBackward(dout.to(dev), ids.to(dev), Tensor.fromArray(init, [V, H], { device: dev })).toArray() as Float32Array;
        // Atomic adds change the order of the fp32 sums. A row sums k <= ~70 terms of N(0,1) here
        // (T / V on average, 64 for vocab 1), so orders differ by at most k * 2^-24 * max |partial
        // sum| (<~ 30): 1.3e-4 in the worst case, far less in practice.
        expect(maxAbsError(gpu, cpu)).toBeLessThan(2e-4);
      });
    }
  }

  it('backward skips out-of-range ids on CUDA', () => {
    const V = 4, H = 8;
    const dout = rng.normal(4 * H);
    const ids = Int32Array.from([1, 4, -3, 1]);
    const gpu = embeddingGrad(Tensor.fromArray(dout, [4, H], { device: dev }), Tensor.fromArray(ids, [4], { device: dev }), V).toArray() as Float32Array;
    const keep = [0, 3]; // tokens with valid ids
    const cpu = embeddingGrad(Tensor.fromArray(keep.flatMap((t) => Array.from(dout.subarray(t * H, (t + 1) * H))), [2, H]),
      Tensor.fromArray(Int32Array.from([1, 1]), [2]), V).toArray() as Float32Array;
    expect(maxAbsError(gpu, cpu)).toBeLessThan(1e-6);
  });

  it('refuses tensors on different devices', () => {
    const weight = Tensor.fromArray(rng.normal(12), [4, 3], { device: dev });
    expect(() => embedding(weight, Tensor.fromArray(Int32Array.from([0]), [1]))).toThrow(/embedding: tensors on different devices: weight on cuda:0, ids on cpu/);
  });
});
