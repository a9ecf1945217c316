import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { embedding, embeddingBackward, embeddingGrad } from '../src/runtime/ops/embedding.js';
import { finiteDifference, maxAbsError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

/** float64 reference: dweight[ids[t]] += dout[t] */
function scatterRef(dout: ArrayLike<number>, ids: ArrayLike<number>, vocab: number, hidden: number, init?: ArrayLike<number>): Float64Array {
  const out = init ? Float64Array.from(init) : new Float64Array(vocab * hidden);
  for (let t = 0; t < ids.length; t++) for (let h = 0; h < hidden; h++) out[ids[t] * hidden + h] += dout[t * hidden + h];
  return out;
}

describe('embedding (CPU)', () => {
  const rng = new Rng(11);

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    for (const idType of ['int32', 'int64'] as const) {
      it(`copies the rows bit for bit (${dtype} weight, ${idType} ids)`, () => {
        const V = 37, H = 13;
        const weight = Tensor.fromArray(rng.normal(V * H), [V, H], { dtype });
        const w = weight.toArray() as Float32Array;
        const ids = [0, 36, 5, 5, 17, 1, 36, 2];
        const out = embedding(weight, Tensor.fromArray(ids, [2, 4], { dtype: idType }));
        expect(out.shape).toEqual([2, 4, H]);
        expect(out.dtype).toBe(dtype);
        const o = out.toArray() as Float32Array;
        ids.forEach((id, t) => expect(Array.from(o.subarray(t * H, (t + 1) * H))).toEqual(Array.from(w.subarray(id * H, (id + 1) * H))));
      });
    }
  }

  it('an id outside the vocabulary is an error naming the id and its position', () => {
    const weight = Tensor.fromArray(rng.normal(6 * 4), [6, 4]);
    expect(() => embedding(weight, Tensor.fromArray(Int32Array.from([0, 5, 6]), [3]))).toThrow(/embedding: id 6 at position 2 is outside the vocabulary \[0, 6\)/);
    expect(() => embedding(weight, Tensor.fromArray([1, -1], [2], { dtype: 'int64' }))).toThrow(/id -1 at position 1/);
    expect(() => embedding(weight, Tensor.fromArray([1, 2 ** 40], [2], { dtype: 'int64' }))).toThrow(/id 1099511627776 at position 1/);
    const dw = Tensor.zeros([6, 4]);
    expect(() => embeddingBackward(Tensor.fromArray(rng.normal(8), [2, 4]), Tensor.fromArray(Int32Array.from([7, 0]), [2]), dw)).toThrow(/embeddingBackward: id 7 at position 0/);
    // nothing was accumulated before the error
    expect(Array.from(dw.toArray() as Float32Array).every((v) => v === 0)).toBe(true);
  });

  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`backward scatter-adds dout by ids into dweight (${dtype} dout, repeated ids), deterministically`, () => {
      const V = 11, H = 70, T = 40;
      const ids = rng.int(T, 0, V); // 40 tokens over 11 ids: many repeats
      const doutT = Tensor.fromArray(rng.normal(T * H), [T, H], { dtype });
      const dout = doutT.toArray() as Float32Array;
      const init = rng.normal(V * H);
      const dweight = Tensor.fromArray(init, [V, H]);
      expect(embeddingBackward(doutT, Tensor.fromArray(ids, [T]), dweight)).toBe(dweight);
      // fp32 sums of <= 40 terms of size ~1 against float64: ~40 * 2^-24 * |sum|
      const got = dweight.toArray() as Float32Array;
      expect(maxAbsError(got, scatterRef(dout, ids, V, H, init))).toBeLessThan(1e-5);
      // deterministic: the same inputs give the same bits
      const again = Tensor.fromArray(init, [V, H]);
      embeddingBackward(doutT, Tensor.fromArray(ids, [T]), again);
      expect(Array.from(again.toArray() as Float32Array)).toEqual(Array.from(got));
    });
  }

  it('backward equals finite differences of the reference forward', () => {
    const V = 5, H = 3, T = 6;
    const ids = Int32Array.from([4, 1, 4, 0, 2, 4]);
    const dout = rng.normal(T * H);
    // loss(W) = sum_t dout[t] . W[ids[t]]
    const loss = (w: Float64Array) => {
      let s = 0;
      for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) s += dout[t * H + h] * w[ids[t] * H + h];
      return s;
    };
    const w0 = Float64Array.from(rng.normal(V * H));
    const idx = Array.from({ length: V * H }, (_, i) => i);
    const fd = finiteDifference(loss, w0, idx);
    const g = embeddingGrad(Tensor.fromArray(dout, [T, H]), Tensor.fromArray(ids, [T]), V);
    expect(g.shape).toEqual([V, H]);
    expect(maxAbsError(g.toArray() as Float32Array, fd)).toBeLessThan(1e-6);
    // row 3 is never looked up: zero gradient
    expect(Array.from((g.toArray() as Float32Array).subarray(3 * H, 4 * H))).toEqual([0, 0, 0]);
  });

  it('names the op, shapes and dtypes when misused', () => {
    const weight = Tensor.fromArray(rng.normal(12), [4, 3]);
    const ids = Tensor.fromArray(Int32Array.from([0, 1]), [2]);
    expect(() => embedding(weight, Tensor.fromArray([0, 1], [2]))).toThrow(/embedding: ids is float32\[2\] on cpu; expected dtype int32 or int64/);
    expect(() => embedding(weight.reshape([12]), ids)).toThrow(/embedding: weight is float32\[12\] on cpu; expected rank 2/);
    expect(() => embedding(Tensor.fromArray(Int32Array.from([1, 2]), [1, 2]), ids)).toThrow(/embedding: weight is int32\[1, 2\] on cpu; expected a floating dtype/);
    const dout = Tensor.fromArray(rng.normal(6), [2, 3]);
    expect(() => embeddingBackward(dout, ids, Tensor.zeros([4, 3], 'bfloat16'))).toThrow(/embeddingBackward: dweight is bfloat16\[4, 3\] on cpu; expected dtype float32/);
    expect(() => embeddingBackward(dout, ids, Tensor.zeros([4, 5]))).toThrow(/embeddingBackward: dout is float32\[2, 3\] on cpu; expected shape \[2, 5\]/);
    expect(() => embeddingGrad(dout, ids, -1)).toThrow(/embeddingGrad: vocab must be a non-negative integer/);
  });
});
