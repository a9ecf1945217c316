import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { type SeededSamplingParams, argmax, sample, samplingFilter_, samplingParams, samplingProbs } from '../src/runtime/ops/sampling.js';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';

// The CPU twin and the CUDA kernels share sampling_math.h (Philox, a correctly rounded exp, integer
// masses): they must agree exactly, token for token and bit for bit, with no tolerance.

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;

/** Index and values of the first bitwise difference between two host arrays, or null when equal. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x);
  const [ua, ub] = [bits(a), bits(b)];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}
const VOCABS = [1, 17, 1000, 32000, 128256, 151936];

/** Random logits; `coarse` rounds them to multiples of 1/4 so that many tokens tie exactly. */
function randomLogits(rng: Rng, rows: number, vocab: number, dtype: 'float32' | 'bfloat16' | 'float16', coarse: boolean): Tensor {
  const v = rng.normal(rows * vocab, 3);
  if (coarse) for (let i = 0; i < v.length; i++) v[i] = Math.round(v[i] * 4) / 4;
  return Tensor.fromArray(v, [rows, vocab], { dtype });
}

/** Per-row settings cycling through greedy, plain, top-k, top-p and both, incl. extreme values. */
function settings(rows: number, vocab: number, step: number) {
  const T = [0, 1, 0.7, 1.5, 1, 0.3, 2, 1];
  const K = [0, 0, 1, 20, 0, 1000, 5, vocab];
  const P = [1, 1, 1, 0.9, 0.5, 0.95, 0.999, 1e-6];
  return samplingParams(
    {
      temperature: Array.from({ length: rows }, (_, r) => T[r % T.length]),
      topK: Array.from({ length: rows }, (_, r) => K[(r >> 3) % K.length]),
      topP: Array.from({ length: rows }, (_, r) => P[(r + (r >> 3)) % P.length]),
      seeds: Array.from({ length: rows }, (_, r) => BigInt(r) * 0x9e3779b97f4a7c15n % 2n ** 64n),
      steps: Array.from({ length: rows }, (_, r) => step + r),
    },
    rows,
  );
}

function toGpu(p: SeededSamplingParams): SeededSamplingParams {
  const d = (t: Tensor) => t.to('cuda:0');
  return { temperature: d(p.temperature), topK: d(p.topK), topP: d(p.topP), seeds: d(p.seeds), steps: d(p.steps) };
}

describe.skipIf(!hasGpu)('sampling on CUDA equals the CPU twin exactly', () => {
  const rng = new Rng(101);

  it('argmax: every dtype, vocab sizes around the pack width, exact ties', () => {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      for (const vocab of [...VOCABS, 7, 256000]) {
        const l = randomLogits(rng, 9, vocab, dtype, true);
        expect(argmax(l.to('cuda:0')).toNumbers(), `${dtype} V=${vocab}`).toEqual(argmax(l).toNumbers());
        // a misaligned view (one element in): the scalar path
        const flat = Tensor.fromArray(new Float32Array(9 * vocab + 1).fill(-1), [9 * vocab + 1], { dtype });
        flat.rows(1, 9 * vocab + 1).copy_(l.reshape([9 * vocab]));
        const view = (t: Tensor) => t.rows(1, 9 * vocab + 1).reshape([9, vocab]);
        expect(argmax(view(flat.to('cuda:0'))).toNumbers()).toEqual(argmax(view(flat)).toNumbers());
      }
    }
    const special = Tensor.fromArray([NaN, 1, 5, 5, -Infinity, -Infinity, -Infinity, -Infinity, NaN, NaN, -3, NaN], [3, 4]);
    expect(argmax(special.to('cuda:0')).toNumbers()).toEqual([2, 0, 2]);
  });

  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`sample, samplingProbs and samplingFilter_ (${dtype}): same tokens, same bits`, () => {
      for (const vocab of VOCABS) {
        for (const coarse of [false, true]) {
          const rows = 64;
          const logits = randomLogits(rng, rows, vocab, dtype, coarse);
          const gl = logits.to('cuda:0');
          for (const step of [0, 1000]) {
            const p = settings(rows, vocab, step);
            const gp = toGpu(p);
            const tag = `V=${vocab} coarse=${coarse} step=${step}`;
            const cpuTokens = sample(logits, p).toNumbers();
            expect(sample(gl, gp).toNumbers(), tag).toEqual(cpuTokens);
            // and again: the GPU draw is deterministic
            expect(sample(gl, gp).toNumbers(), tag).toEqual(cpuTokens);
          }
          const p = settings(rows, vocab, 0);
          const gp = toGpu(p);
          const probs = f32(samplingProbs(gl, gp));
          expect(firstDifference(probs, f32(samplingProbs(logits, p))), `probs V=${vocab} coarse=${coarse}`).toBeNull();
          const cpuF = logits.clone();
          const gpuF = gl.clone();
          samplingFilter_(cpuF, p);
          samplingFilter_(gpuF, gp);
          expect(firstDifference(f32(gpuF), f32(cpuF)), `filter V=${vocab} coarse=${coarse}`).toBeNull();
        }
      }
    });
  }

  it('many draws of one request: the GPU sequence equals the CPU sequence', () => {
    const vocab = 128256;
    const row = randomLogits(rng, 1, vocab, 'bfloat16', false);
    const draws = 256;
    const rows = Tensor.empty([draws, vocab], 'bfloat16');
    for (let i = 0; i < draws; i++) rows.rows(i, i + 1).copy_(row);
    const p = samplingParams({ temperature: 0.8, topK: 50, topP: 0.9, seeds: 2n ** 63n + 5n, steps: Array.from({ length: draws }, (_, i) => i) }, draws);
    const cpu = sample(rows, p).toNumbers();
    expect(sample(rows.to('cuda:0'), toGpu(p)).toNumbers()).toEqual(cpu);
    expect(new Set(cpu).size).toBeGreaterThan(5);
  });
});
