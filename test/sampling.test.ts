import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { argmax, philox4x32, sample, samplingFilter_, samplingParams, samplingProbs } from '../src/runtime/ops/sampling.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { argmaxRef, filteredProbsRef, philoxRef } from './helpers/ref_sampling.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;
const logitsOf = (rows: number[][], dtype: 'float32' | 'bfloat16' = 'float32'): Tensor =>
  Tensor.fromArray(rows.flat(), [rows.length, rows[0].length], { dtype });

describe('Philox-4x32-10', () => {
  // Random123's published known-answer vectors (tests/kat_vectors)
  const KAT: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
  ];
  it('matches the known-answer vectors, natively and in the reference', () => {
    for (const [ctr, key, want] of KAT) {
      expect(philox4x32(ctr, key)).toEqual(want);
      expect(philoxRef(ctr, key)).toEqual(want);
    }
  });
});

describe('argmax (CPU)', () => {
  it('exact on random rows, ties to the lowest index, NaN never wins', () => {
    const rng = new Rng(2);
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      const [rows, vocab] = [13, 1001];
      // coarse values: many exact ties
      const vals = Float32Array.from(rng.int(rows * vocab, -20, 20), (v) => v / 4);
      const t = Tensor.fromArray(vals, [rows, vocab], { dtype });
      const host = f32(t);
      const want = Array.from({ length: rows }, (_, r) => argmaxRef(host.subarray(r * vocab, (r + 1) * vocab)));
      expect(argmax(t).toNumbers()).toEqual(want);
    }
    expect(argmax(logitsOf([[NaN, 1, 5, 5], [-Infinity, -Infinity, -Infinity, -Infinity], [NaN, NaN, -3, NaN]])).toNumbers()).toEqual([2, 0, 2]);
    expect(argmax(Tensor.fromArray([1, 9, 3], [3])).shape).toEqual([]);
    expect(argmax(Tensor.fromArray([1, 9, 3, 4, 0, 2], [2, 1, 3])).toNumbers()).toEqual([1, 0]);
  });
});

describe('sampling distribution (CPU)', () => {
  const rng = new Rng(9);

  it('samplingProbs equals the Hugging Face float64 reference', () => {
    const vocab = 300;
    const rowsData = Array.from({ length: 12 }, () => Array.from(rng.normal(vocab, 2)));
    const settings: [number, number, number][] = [
      [1, 0, 1], [0.7, 0, 1], [1.3, 20, 1], [1, 0, 0.9], [0.8, 50, 0.7], [1, 1, 1],
      [2, 300, 0.5], [1, 5, 0.99], [0.5, 0, 0.3], [0, 0, 1], [0, 10, 0.5], [1.1, 299, 0.95],
    ];
    const p = samplingParams(
      { temperature: settings.map((s) => s[0]), topK: settings.map((s) => s[1]), topP: settings.map((s) => s[2]) },
      settings.length,
    );
    const probs = f32(samplingProbs(logitsOf(rowsData), p));
    rowsData.forEach((row, r) => {
      const ref = filteredProbsRef(row, ...settings[r]);
      const got = probs.subarray(r * vocab, (r + 1) * vocab);
      let sum = 0;
      for (let i = 0; i < vocab; i++) {
        // masses are exact to 2^-40 of the top token; exp and float32 rounding add ~1e-7 relative
        expect(Math.abs(got[i] - ref[i]), `row ${r} token ${i}`).toBeLessThanOrEqual(1e-6 * ref[i] + 1e-10);
        sum += got[i];
      }
      expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
    });
  });

  it('top-k keeps ties at the boundary; top-p admits tied tokens in index order', () => {
    const p = (t: number, k: number, pp: number) => samplingParams({ temperature: t, topK: k, topP: pp }, 1);
    // top-k = 2 over [3, 2, 2, 2, 1]: the three 2s tie for second place and all stay
    const k = f32(samplingProbs(logitsOf([[3, 2, 2, 2, 1]]), p(1, 2, 1)));
    expect(Array.from(k, (v) => v > 0)).toEqual([true, true, true, true, false]);
    // four equal tokens of probability ~0.22 each and p = 0.5: three are needed, the lowest indices
    const t = f32(samplingProbs(logitsOf([[1, 1, 1, 1, 0]], 'bfloat16'), p(1, 0, 0.5)));
    expect(Array.from(t, (v) => v > 0)).toEqual([true, true, true, false, false]);
    expect(t[0]).toBeCloseTo(1 / 3, 6);
    // probabilities 0.5, 0.3, 0.2: p = 0.75 needs the first two, p = 0.85 all three
    const l = [[Math.log(0.5), Math.log(0.3), Math.log(0.2)]];
    expect(Array.from(f32(samplingProbs(logitsOf(l), p(1, 0, 0.75))), (v) => v > 0)).toEqual([true, true, false]);
    expect(Array.from(f32(samplingProbs(logitsOf(l), p(1, 0, 0.85))), (v) => v > 0)).toEqual([true, true, true]);
    // a tiny p keeps exactly the top token
    expect(Array.from(f32(samplingProbs(logitsOf(l), p(1, 0, 1e-9))))).toEqual([1, 0, 0]);
  });

  it('draw frequencies converge to the filtered distribution (chi-square)', () => {
    const logits = [0.3, -1.2, 2.0, 0.9, 0.0, -0.4, 1.5, -2.5, 0.9, 1.1];
    for (const [temperature, topK, topP] of [[1, 0, 1], [0.7, 6, 1], [1.3, 0, 0.8], [1, 8, 0.9]] as const) {
      const draws = 40_000;
      const p = samplingParams({ temperature, topK, topP, seeds: 12345n, steps: Array.from({ length: draws }, (_, i) => i) }, draws);
      const rows = Tensor.fromArray(Array.from({ length: draws }, () => logits).flat(), [draws, logits.length]);
      const tokens = sample(rows, p).toNumbers();
      const counts = new Array(logits.length).fill(0);
      for (const tk of tokens) counts[tk]++;
      const expected = filteredProbsRef(logits, temperature, topK, topP);
      let chi2 = 0;
      let dof = -1;
      for (let i = 0; i < logits.length; i++) {
        if (expected[i] === 0) {
          expect(counts[i], `token ${i} is filtered out`).toBe(0);
          continue;
        }
        chi2 += (counts[i] - draws * expected[i]) ** 2 / (draws * expected[i]);
        dof++;
      }
      // chi-square with dof <= 9: mean dof, sd sqrt(2 dof); this bound is beyond the 1e-6 quantile
      expect(chi2, `T=${temperature} k=${topK} p=${topP}`).toBeLessThan(dof + 8 * Math.sqrt(2 * dof) + 10);
    }
  });

  it('is a function of (seed, step): reproducible, and different steps or seeds differ', () => {
    const vocab = 5000;
    const row = Array.from(rng.normal(vocab, 1.5));
    const rows = Tensor.fromArray([...row, ...row, ...row, ...row], [4, vocab]);
    const p = samplingParams({ temperature: 1, topP: 0.95, seeds: [7n, 7n, 8n, 2n ** 64n - 1n], steps: [3, 3, 3, 3] }, 4);
    const a = sample(rows, p).toNumbers();
    expect(a[0]).toBe(a[1]);
    expect(sample(rows, p).toNumbers()).toEqual(a);
    const many = samplingParams({ temperature: 1, seeds: 7n, steps: Array.from({ length: 64 }, (_, i) => i) }, 64);
    const tokens = sample(Tensor.fromArray(Array.from({ length: 64 }, () => row).flat(), [64, vocab]), many).toNumbers();
    expect(new Set(tokens).size).toBeGreaterThan(20);
  });

  it('temperature 0 is argmax; rows of -inf give the argmax; NaN logits are never drawn', () => {
    const rows = logitsOf([
      [0.1, 3, -2, 3],
      [-Infinity, -Infinity, -Infinity, -Infinity],
      [NaN, 0.5, NaN, -Infinity],
    ]);
    const p = samplingParams({ temperature: [0, 1, 1], seeds: [1n, 2n, 3n], steps: [0, 0, 0] }, 3);
    expect(sample(rows, p).toNumbers()).toEqual([1, 0, 1]);
    expect(Array.from(f32(samplingProbs(rows, p)))).toEqual([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
  });

  it('samplingFilter_ writes logits / T for survivors and -inf elsewhere, in place', () => {
    const t = logitsOf([[2, 1, 0.5, -1], [0.2, 0.9, 0.1, 0.3]]);
    const p = samplingParams({ temperature: [2, 0], topK: [2, 0] }, 2);
    expect(samplingFilter_(t, p)).toBe(t);
    expect(Array.from(f32(t))).toEqual([1, 0.5, -Infinity, -Infinity, -Infinity, 0.9, -Infinity, -Infinity].map(Math.fround));
    const b = Tensor.fromArray(roundBf16(new Float32Array([1.5, -0.25, 3, 0.75])), [1, 4], { dtype: 'bfloat16' });
    samplingFilter_(b, samplingParams({ temperature: 0.5, topP: 0.99 }, 1));
    const bv = f32(b);
    expect(bv[2]).toBe(6);
    expect(bv[0]).toBe(3);
  });

  it('names the op and shapes when misused', () => {
    const l = Tensor.fromArray(new Float32Array(6), [2, 3]);
    const p = samplingParams({ temperature: 1 }, 2);
    expect(() => sample(Tensor.fromArray(new Float32Array(6), [6]), p)).toThrow(/sample: logits is float32\[6\] on cpu; expected rank 2/);
    expect(() => sample(l, samplingParams({ temperature: 1 }, 3))).toThrow(/sample: temperature is float32\[3\] on cpu; expected shape \[2\]/);
    expect(() => samplingProbs(Tensor.empty([2, 3], 'int32'), p)).toThrow(/samplingProbs: logits is int32\[2, 3\] on cpu; expected a floating dtype/);
    expect(() => samplingParams({ temperature: -1 }, 1)).toThrow(/samplingParams: temperature must be finite and >= 0/);
    expect(() => samplingParams({ temperature: 1, topP: 0 }, 1)).toThrow(/topP must be in \(0, 1\]/);
    expect(() => samplingParams({ temperature: 1, topK: 1.5 }, 1)).toThrow(/topK must be an integer/);
    expect(() => samplingParams({ temperature: [1, 2] }, 3)).toThrow(/temperature has 2 values for 3 rows/);
    expect(() => samplingParams({ temperature: 1, seeds: -1n }, 1)).toThrow(/seeds must be uint64 values/);
    expect(() => argmax(Tensor.empty([2, 0]))).toThrow(/argmax: logits is float32\[2, 0\] on cpu; the last dimension is empty/);
  });
});
