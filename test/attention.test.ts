import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import {
  attention,
  attentionBackward,
  cuSeqlensFromDocumentIds,
  cuSeqlensFromIds,
  type AttentionOptions,
} from '../src/runtime/ops/attention.js';
import { finiteDifference, maxAbsError, relError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { refAttentionBackward, refAttentionForward, refKeys, refMask, type RefAttentionSpec } from './helpers/ref_attention.js';

type MaskCase = { mask: 'causal' } | { mask: 'sliding'; window: number } | { mask: 'ttt'; tttStep: number };

interface Case {
  docs: number[];
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  m: MaskCase;
}

function cumsum(docs: number[]): number[] {
  const cu = [0];
  for (const d of docs) cu.push(cu[cu.length - 1] + d);
  return cu;
}

function specOf(c: Case, scale?: number): RefAttentionSpec {
  const cu = cumsum(c.docs);
  return {
    tokens: cu[cu.length - 1],
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    cuSeqlens: cu,
    scale: scale ?? 1 / Math.sqrt(c.headDim),
    ...c.m,
  };
}

function inputs(spec: RefAttentionSpec, seed: number, bf16: boolean) {
  const rng = new Rng(seed);
  const T = spec.tokens;
  const Tk = refKeys(spec);
  const r = (n: number) => (bf16 ? roundBf16(rng.normal(n)) : rng.normal(n));
  return {
    q: r(T * spec.numHeads * spec.headDim),
    k: r(Tk * spec.numKvHeads * spec.headDim),
    v: r(Tk * spec.numKvHeads * spec.headDim),
    dout: r(T * spec.numHeads * spec.headDim),
  };
}

function run(c: Case, seed: number, dtype: 'float32' | 'bfloat16' = 'float32', explicitScale?: number) {
  const spec = specOf(c, explicitScale);
  const x = inputs(spec, seed, dtype === 'bfloat16');
  const T = spec.tokens;
  const Tk = refKeys(spec);
  const { numHeads: nH, numKvHeads: nKV, headDim: hd } = spec;
  const q = Tensor.fromArray(x.q, [T, nH, hd], { dtype });
  const k = Tensor.fromArray(x.k, [Tk, nKV, hd], { dtype });
  const v = Tensor.fromArray(x.v, [Tk, nKV, hd], { dtype });
  const dout = Tensor.fromArray(x.dout, [T, nH, hd], { dtype });
  const opts: AttentionOptions = { cuSeqlens: Tensor.fromArray(Int32Array.from(spec.cuSeqlens), [spec.cuSeqlens.length]), ...c.m };
  if (explicitScale !== undefined) opts.scale = explicitScale;
  const { out, lse } = attention(q, k, v, opts);
  const grads = attentionBackward(dout, q, k, v, out, lse, opts);
  return { spec, x, out, lse, ...grads };
}

const MASKS: MaskCase[] = [
  { mask: 'causal' },
  { mask: 'sliding', window: 4 },
  { mask: 'sliding', window: 40 },
  { mask: 'ttt', tttStep: 0 },
  { mask: 'ttt', tttStep: 1 },
  { mask: 'ttt', tttStep: 3 },
];

// Documents of odd lengths; 70 spans three of the CPU twin's 32-row tiles, so the online softmax
// crosses tile boundaries within one document.
const CASES: Case[] = [
  ...MASKS.map((m) => ({ docs: [1, 5, 17, 33, 70], numHeads: 4, numKvHeads: 2, headDim: 8, m })),
  ...MASKS.map((m) => ({ docs: [1, 5, 17, 33], numHeads: 2, numKvHeads: 1, headDim: 64, m })),
  { docs: [150], numHeads: 3, numKvHeads: 3, headDim: 16, m: { mask: 'sliding', window: 50 } },
];

function label(c: Case): string {
  const m = c.m.mask === 'sliding' ? `sliding(${c.m.window})` : c.m.mask === 'ttt' ? `ttt(step ${c.m.tttStep})` : 'causal';
  return `${m}, docs [${c.docs.join(', ')}], heads ${c.numHeads}/${c.numKvHeads}, hd ${c.headDim}`;
}

describe('attention forward on the CPU', () => {
  it('the reference mask follows the definitions', () => {
    // docs [2, 3]: rows 0-1 and 2-4; TTT step 1 adds key T + i for each query i.
    const spec: RefAttentionSpec = { tokens: 5, numHeads: 1, numKvHeads: 1, headDim: 1, cuSeqlens: [0, 2, 5], mask: 'ttt', tttStep: 1, scale: 1 };
    const m = refMask(spec);
    const row = (i: number) => Array.from(m.slice(i * 10, i * 10 + 10)).join('');
    expect(row(0)).toBe('1000010000');
    expect(row(1)).toBe('1100001000');
    expect(row(2)).toBe('0010000100');
    expect(row(4)).toBe('0011100001');
    const sliding = refMask({ ...spec, mask: 'sliding', window: 2, tttStep: undefined });
    expect(Array.from(sliding.slice(20, 25)).join('')).toBe('00011');
  });

  for (const c of CASES) {
    it(`matches the float64 reference: ${label(c)}`, () => {
      const r = run(c, 11);
      const ref = refAttentionForward(r.x.q, r.x.k, r.x.v, r.spec);
      // fp32 math against fp64: summation-order rounding only.
      expect(relError(r.out.toArray() as Float32Array, ref.out)).toBeLessThan(2e-6);
      expect(maxAbsError(r.lse.toArray() as Float32Array, ref.lse)).toBeLessThan(2e-5);
    });
  }

  it('uses the given scale', () => {
    const c = CASES[0];
    const r = run(c, 5, 'float32', 0.7);
    const ref = refAttentionForward(r.x.q, r.x.k, r.x.v, r.spec);
    expect(r.spec.scale).toBe(0.7);
    expect(relError(r.out.toArray() as Float32Array, ref.out)).toBeLessThan(2e-6);
    expect(maxAbsError(r.lse.toArray() as Float32Array, ref.lse)).toBeLessThan(2e-5);
  });

  it('bfloat16 storage computes in fp32 and rounds only the output', () => {
    for (const c of [CASES[0], CASES[5], CASES[8]]) {
      const r = run(c, 21, 'bfloat16');
      expect(r.out.dtype).toBe('bfloat16');
      const ref = refAttentionForward(r.x.q, r.x.k, r.x.v, r.spec); // inputs already rounded to bf16
      // Output rounding to bf16: <= 2^-9 relative per element, so well under 4e-3 on the norm.
      expect(relError(r.out.toArray() as Float32Array, ref.out)).toBeLessThan(4e-3);
      expect(maxAbsError(r.lse.toArray() as Float32Array, ref.lse)).toBeLessThan(2e-5);
    }
  });
});

describe('attention backward on the CPU', () => {
  for (const c of CASES) {
    it(`matches the analytic float64 backward: ${label(c)}`, () => {
      const r = run(c, 31);
      const ref = refAttentionBackward(r.x.dout, r.x.q, r.x.k, r.x.v, r.spec);
      // fp32 math; dS = P (dP - delta) cancels a little, hence 1e-5 rather than 2e-6.
      expect(relError(r.dq.toArray() as Float32Array, ref.dq)).toBeLessThan(1e-5);
      expect(relError(r.dk.toArray() as Float32Array, ref.dk)).toBeLessThan(1e-5);
      expect(relError(r.dv.toArray() as Float32Array, ref.dv)).toBeLessThan(1e-5);
    });
  }

  it('matches central finite differences of the float64 forward', () => {
    for (const c of [CASES[0], CASES[2], CASES[4]]) {
      const r = run(c, 41);
      const { x, spec } = r;
      const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) => {
        const { out } = refAttentionForward(qq, kk, vv, spec);
        let s = 0;
        for (let i = 0; i < out.length; i++) s += x.dout[i] * out[i];
        return s;
      };
      const rng = new Rng(7);
      const pick = (n: number) => Array.from(rng.int(4, 0, n));
      const q64 = Float64Array.from(x.q);
      const k64 = Float64Array.from(x.k);
      const v64 = Float64Array.from(x.v);
      // TTT: also probe the later steps' keys (the diagonals), which live past row T of k/v.
      const kIdx = pick(k64.length).concat(spec.mask === 'ttt' ? [k64.length - 1, k64.length - 5] : []);
      const checks: [string, Float64Array, number[], (t: Float64Array) => number, ArrayLike<number>][] = [
        ['q', q64, pick(q64.length), (t) => loss(t, k64, v64), r.dq.toArray() as Float32Array],
        ['k', k64, kIdx, (t) => loss(q64, t, v64), r.dk.toArray() as Float32Array],
        ['v', v64, pick(v64.length).concat(kIdx), (t) => loss(q64, k64, t), r.dv.toArray() as Float32Array],
      ];
      for (const [name, x0, idx, f, analytic] of checks) {
        // float64 central differences with h = 1e-4: truncation ~1e-8, far below the fp32 kernel.
        const fd = finiteDifference(f, x0, idx, 1e-4);
        idx.forEach((i, n) => {
          expect(Math.abs(analytic[i] - fd[n]), `d${name}[${i}]`).toBeLessThan(1e-4 * Math.max(1, Math.abs(fd[n])));
        });
      }
    }
  });

  it('bfloat16 storage matches the analytic backward up to output rounding', () => {
    const c = CASES[3];
    const r = run(c, 51, 'bfloat16');
    const ref = refAttentionBackward(r.x.dout, r.x.q, r.x.k, r.x.v, r.spec);
    // The saved out is bf16, so delta = rowsum(dO * out) carries its 2^-9 rounding into dS; with the
    // output rounding itself that stays under 1e-2 on the norm.
    expect(relError(r.dq.toArray() as Float32Array, ref.dq)).toBeLessThan(1e-2);
    expect(relError(r.dk.toArray() as Float32Array, ref.dk)).toBeLessThan(1e-2);
    expect(relError(r.dv.toArray() as Float32Array, ref.dv)).toBeLessThan(4e-3);
  });
});

describe('attention arguments', () => {
  const cu = () => Tensor.fromArray(Int32Array.from([0, 3, 8]), [3]);
  const t = (shape: number[], dtype: 'float32' | 'bfloat16' | 'float16' = 'float32') => Tensor.zeros(shape, dtype);

  it('cuSeqlens from document ids', () => {
    expect(Array.from(cuSeqlensFromIds([7, 7, 3, 3, 3, 9]))).toEqual([0, 2, 5, 6]);
    expect(Array.from(cuSeqlensFromIds([]))).toEqual([0]);
    const ids = Tensor.fromArray(Int32Array.from([0, 0, 0, 1, 2, 2]), [6]);
    const c = cuSeqlensFromDocumentIds(ids);
    expect(c.dtype).toBe('int32');
    expect(c.toNumbers()).toEqual([0, 3, 4, 6]);
    expect(() => cuSeqlensFromIds([1, 2, 1])).toThrow(/document id 1 at token 2 reappears/);
    expect(() => cuSeqlensFromDocumentIds(Tensor.zeros([3]))).toThrow(/docIds is float32\[3\] on cpu; expected dtype int32/);
  });

  it('names shapes and dtypes when misused', () => {
    const q = t([8, 4, 16]);
    const k = t([8, 2, 16]);
    expect(() => attention(q, k, t([8, 2, 8]), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/attention: v is float32\[8, 2, 8\] on cpu; expected shape \[8, 2, 16\]/);
    expect(() => attention(q, t([8, 3, 16]), t([8, 3, 16]), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/q heads \(4\) must be a multiple of k\/v heads \(3\)/);
    expect(() => attention(q, t([8, 2, 16], 'bfloat16'), t([8, 2, 16], 'bfloat16'), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/dtypes differ: q is float32, k is bfloat16/);
    expect(() => attention(t([8, 4, 16], 'float16'), t([8, 2, 16], 'float16'), t([8, 2, 16], 'float16'), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/expected dtype float32 or bfloat16/);
    expect(() => attention(q, t([7, 2, 16]), t([7, 2, 16]), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/mask 'causal' needs as many k\/v rows as q rows/);
    expect(() => attention(q, k, k, { cuSeqlens: cu(), mask: 'sliding' })).toThrow(/mask 'sliding' needs an integer window > 0/);
    expect(() => attention(q, k, k, { cuSeqlens: cu(), mask: 'causal', window: 3 })).toThrow(/window is only used by mask 'sliding'/);
    const badKernel = { cuSeqlens: cu(), mask: 'causal', kernel: 'wgmma' } as unknown as AttentionOptions;
    expect(() => attention(q, k, k, badKernel)).toThrow(/kernel must be 'auto', 'simt' or 'mma', got wgmma/);
    expect(() => attention(q, k, k, { cuSeqlens: cu(), mask: 'ttt', tttStep: 1 })).toThrow(/TTT step 1 needs k\/v with \(step \+ 1\) \* T = 16 rows/);
    expect(() => attention(q, k, k, { cuSeqlens: Tensor.fromArray(Int32Array.from([0, 5, 3, 8]), [4]), mask: 'causal' })).toThrow(/cuSeqlens must rise from 0 to T = 8/);
    expect(() => attention(q, k, k, { cuSeqlens: Tensor.fromArray(Int32Array.from([0, 7]), [2]), mask: 'causal' })).toThrow(/cuSeqlens must rise from 0 to T = 8/);
    expect(() => attention(q, k, k, { cuSeqlens: Tensor.zeros([3]), mask: 'causal' })).toThrow(/cuSeqlens is float32\[3\] on cpu; expected dtype int32/);
    const { out, lse } = attention(q, k, k, { cuSeqlens: cu(), mask: 'causal' });
    expect(() => attentionBackward(t([8, 4, 8]), q, k, k, out, lse, { cuSeqlens: cu(), mask: 'causal' })).toThrow(/attentionBackward: dout is float32\[8, 4, 8\] on cpu; expected shape \[8, 4, 16\]/);
    expect(() => attentionBackward(out, q, k, k, out, t([4, 7]), { cuSeqlens: cu(), mask: 'causal' })).toThrow(/lse is float32\[4, 7\] on cpu; expected shape \[4, 8\]/);
  });

  it('the native glue checks sizes before any kernel runs', async () => {
    const { native } = await import('../src/runtime/binding.js');
    const q = t([8, 4, 16]);
    const small = t([4, 2, 16]);
    const out = t([8, 4, 16]);
    const lse = t([4, 8]);
    expect(() => native().attentionForward(q.storage, small.storage, small.storage, cu().storage, out.storage, lse.storage, 0, 8, 8, 4, 2, 16, 2, 0, 0, 0, 0.25, 0)).toThrow(
      /attentionForward: k holds 512 bytes but the shapes need 1024/,
    );
    expect(() => native().attentionForward(q.storage, q.storage, q.storage, cu().storage, out.storage, lse.storage, 0, 8, 8, 4, 3, 16, 2, 0, 0, 0, 0.25, 0)).toThrow(
      /attentionForward: num_heads \(4\) must be a positive multiple of num_kv_heads \(3\)/,
    );
  });

  it('handles an empty batch', () => {
    const empty = t([0, 2, 8]);
    const { out, lse } = attention(empty, empty, empty, { cuSeqlens: Tensor.fromArray(Int32Array.from([0]), [1]), mask: 'causal' });
    expect(out.shape).toEqual([0, 2, 8]);
    expect(lse.shape).toEqual([2, 0]);
  });
});
