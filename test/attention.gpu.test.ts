import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { memoryStats, synchronize } from '../src/runtime/cuda.js';
import { attention, attentionBackward, type AttentionOptions } from '../src/runtime/ops/attention.js';
import { hasGpu } from './helpers/gpu.js';
import { maxAbsError, relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

const GPU = 'cuda:0' as const;
// Lengths that are not multiples of the 64/128-row tiles; T = 842.
const DOCS = [1, 63, 65, 200, 513];

type MaskCase = { mask: 'causal' } | { mask: 'sliding'; window: number } | { mask: 'ttt'; tttStep: number };
const MASKS: MaskCase[] = [{ mask: 'causal' }, { mask: 'sliding', window: 100 }, { mask: 'ttt', tttStep: 2 }];

function cuOf(docs: number[]): Int32Array {
  const cu = [0];
  for (const d of docs) cu.push(cu[cu.length - 1] + d);
  return Int32Array.from(cu);
}

function keysOf(T: number, m: MaskCase): number {
  return m.mask === 'ttt' ? (m.tttStep + 1) * T : T;
}

function maskLabel(m: MaskCase): string {
  return m.mask === 'sliding' ? `sliding(${m.window})` : m.mask === 'ttt' ? `ttt(step ${m.tttStep})` : 'causal';
}

/**
 * Worst row of a [rows, hd] tensor: ||a_r - b_r|| / (||b_r|| + 0.1 * rms row norm). Catches errors
 * confined to a few rows (a mask off by one at a tile or document edge) that a whole-tensor norm
 * would dilute; the floor keeps near-zero rows from dominating.
 */
function worstRowError(a: ArrayLike<number>, b: ArrayLike<number>, hd: number): number {
  const rows = b.length / hd;
  const dn: number[] = [];
  const bn: number[] = [];
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    let d = 0;
    let n = 0;
    for (let c = r * hd; c < (r + 1) * hd; c++) {
      if (!Number.isFinite(a[c])) return Infinity;
      d += (a[c] - b[c]) ** 2;
      n += b[c] ** 2;
    }
    dn.push(Math.sqrt(d));
    bn.push(Math.sqrt(n));
    sum += n;
  }
  const floor = 0.1 * Math.sqrt(sum / rows);
  let worst = 0;
  for (let r = 0; r < rows; r++) worst = Math.max(worst, dn[r] / (bn[r] + floor));
  return worst;
}

interface Tol {
  rel: number;
  row: number;
  lse: number;
}

// f32: the SIMT kernels do the CPU twin's fp32 math in another order; 1e-5 on the output norm and
// 1e-4 on the gradients, whose dS = P (dP - delta) cancels (measured differences are ~1e-6).
const F32: Tol = { rel: 1e-4, row: 1e-3, lse: 1e-4 };
// bf16 SIMT: the same fp32 math on the same bf16 inputs; only the final rounding to bf16 can land
// one ulp (2^-8 relative) apart, and rarely does.
const BF16_SIMT: Tol = { rel: 2e-3, row: 1e-2, lse: 1e-4 };
// bf16 mma.sync: P and dS are rounded to bf16 before their matmuls (2^-9 relative each, random
// signs), plus the output rounding. A numpy emulation of exactly that at these sizes gives ~3e-3 on
// the norms and ~4e-3 on the worst row, so 1e-2 / 2.5e-2 leave margin while a dropped or extra
// key block (>= several % on the rows it touches) still fails. lse is fp32 math on both sides.
const BF16_MMA: Tol = { rel: 1e-2, row: 2.5e-2, lse: 1e-3 };

function compareCase(opts: {
  hd: number;
  numHeads: number;
  numKvHeads: number;
  dtype: 'float32' | 'bfloat16';
  m: MaskCase;
  kernel: 'auto' | 'simt' | 'mma';
  tol: Tol;
  seed: number;
}) {
  const { hd, numHeads: nH, numKvHeads: nKV, dtype, m, kernel, tol } = opts;
  tidy(() => {
    const cu = cuOf(DOCS);
    const T = cu[cu.length - 1];
    const Tk = keysOf(T, m);
    const rng = new Rng(opts.seed);
    const q = Tensor.fromArray(rng.normal(T * nH * hd), [T, nH, hd], { dtype });
    const k = Tensor.fromArray(rng.normal(Tk * nKV * hd), [Tk, nKV, hd], { dtype });
    const v = Tensor.fromArray(rng.normal(Tk * nKV * hd), [Tk, nKV, hd], { dtype });
    const dout = Tensor.fromArray(rng.normal(T * nH * hd), [T, nH, hd], { dtype });
    const cpuOpts: AttentionOptions = { cuSeqlens: Tensor.fromArray(cu, [cu.length]), ...m };
    const gpuOpts: AttentionOptions = { cuSeqlens: Tensor.fromArray(cu, [cu.length], { device: GPU }), ...m, kernel };

    const ref = attention(q, k, v, cpuOpts);
    const refGrads = attentionBackward(dout, q, k, v, ref.out, ref.lse, cpuOpts);

    const [qG, kG, vG, doutG] = [q, k, v, dout].map((t) => t.to(GPU));
    const got = attention(qG, kG, vG, gpuOpts);
    // The backward gets the CPU's out and lse, so its comparison isolates the backward kernels.
    const gotGrads = attentionBackward(doutG, qG, kG, vG, ref.out.to(GPU), ref.lse.to(GPU), gpuOpts);
    synchronize(GPU);

    expect(got.out.dtype).toBe(dtype);
    const check = (name: string, a: Tensor, b: Tensor) => {
      const av = a.toArray() as Float32Array;
      const bv = b.toArray() as Float32Array;
      expect(relError(av, bv), `${name} norm`).toBeLessThan(tol.rel);
      expect(worstRowError(av, bv, hd), `${name} worst row`).toBeLessThan(tol.row);
    };
    check('out', got.out, ref.out);
    expect(maxAbsError(got.lse.toArray() as Float32Array, ref.lse.toArray() as Float32Array), 'lse').toBeLessThan(tol.lse);
    check('dq', gotGrads.dq, refGrads.dq);
    check('dk', gotGrads.dk, refGrads.dk);
    check('dv', gotGrads.dv, refGrads.dv);
  });
}

describe.skipIf(!hasGpu)('attention on CUDA against the CPU twin', () => {
  let seed = 100;
  for (const hd of [64, 128]) {
    // GQA groups of 3 (hd 64) and 4 (hd 128).
    const heads = hd === 64 ? { numHeads: 6, numKvHeads: 2 } : { numHeads: 4, numKvHeads: 1 };
    for (const m of MASKS) {
      const s = seed++;
      // 'auto' is the wgmma forward on Hopper for hd 128 (attention_fwd_hopper.cu), 'mma' the mma.sync one.
      it(`bf16 flash (auto), hd ${hd}, ${maskLabel(m)}`, () => {
        compareCase({ hd, ...heads, dtype: 'bfloat16', m, kernel: 'auto', tol: BF16_MMA, seed: s });
      });
      if (hd === 128) {
        it(`bf16 mma.sync, hd ${hd}, ${maskLabel(m)}`, () => {
          compareCase({ hd, ...heads, dtype: 'bfloat16', m, kernel: 'mma', tol: BF16_MMA, seed: s });
        });
      }
      it(`bf16 SIMT, hd ${hd}, ${maskLabel(m)}`, () => {
        compareCase({ hd, ...heads, dtype: 'bfloat16', m, kernel: 'simt', tol: BF16_SIMT, seed: s });
      });
      it(`f32, hd ${hd}, ${maskLabel(m)}`, () => {
        compareCase({ hd, ...heads, dtype: 'float32', m, kernel: 'auto', tol: F32, seed: s });
      });
    }
  }

  it('f32 and bf16 SIMT take other head dims (hd 40)', () => {
    compareCase({ hd: 40, numHeads: 2, numKvHeads: 2, dtype: 'float32', m: { mask: 'ttt', tttStep: 1 }, kernel: 'auto', tol: F32, seed: 7 });
    compareCase({ hd: 40, numHeads: 2, numKvHeads: 1, dtype: 'bfloat16', m: { mask: 'causal' }, kernel: 'auto', tol: BF16_SIMT, seed: 8 });
  });

  // Exact mask check for the mma.sync forward: every key row of a kv head is the same vector, so
  // all visible scores of a row are equal and each visible key gets weight exactly 1 before the
  // normalisation (exp2(0)); with small-integer values the sums are exact in fp32 on both sides.
  // The outputs must then agree to the last bit except for rare 1-ulp rounding ties, whereas one
  // missing or extra key moves some element of its row by >= 1/n of an integer-valued sum of n
  // keys: several % of the value, far above one ulp.
  for (const [hd, kernel] of [[64, 'auto'], [128, 'auto'], [128, 'mma']] as const) {
    for (const m of MASKS) {
      it(`bf16 flash forward (${kernel}) mask is exact, hd ${hd}, ${maskLabel(m)}`, () => {
        tidy(() => {
          const nH = 4;
          const nKV = 2;
          const cu = cuOf(DOCS);
          const T = cu[cu.length - 1];
          const Tk = keysOf(T, m);
          const rng = new Rng(300 + hd);
          const q = Tensor.fromArray(rng.normal(T * nH * hd), [T, nH, hd], { dtype: 'bfloat16' });
          const row = rng.normal(nKV * hd);
          const kv = new Float32Array(Tk * nKV * hd);
          for (let j = 0; j < Tk; j++) kv.set(row, j * nKV * hd);
          const k = Tensor.fromArray(kv, [Tk, nKV, hd], { dtype: 'bfloat16' });
          const v = Tensor.fromArray(Float32Array.from(rng.int(Tk * nKV * hd, -4, 5)), [Tk, nKV, hd], { dtype: 'bfloat16' });
          const ref = attention(q, k, v, { cuSeqlens: Tensor.fromArray(cu, [cu.length]), ...m });
          const got = attention(q.to(GPU), k.to(GPU), v.to(GPU), { cuSeqlens: Tensor.fromArray(cu, [cu.length], { device: GPU }), ...m, kernel });
          const a = got.out.toArray() as Float32Array;
          const b = ref.out.toArray() as Float32Array;
          let worst = 0;
          for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 2 ** -6));
          expect(worst).toBeLessThanOrEqual(2 ** -7); // at most one bf16 ulp (<= 2^-7 relative) anywhere
          expect(maxAbsError(got.lse.toArray() as Float32Array, ref.lse.toArray() as Float32Array)).toBeLessThan(1e-3);
        });
      });
    }
  }

  it('100 forward + backward calls inside tidy leave bytesInUse flat', () => {
    const hd = 128;
    const nH = 8;
    const nKV = 2;
    const cu = cuOf(DOCS);
    const T = cu[cu.length - 1];
    const rng = new Rng(9);
    const [q, dout] = [0, 1].map(() => Tensor.fromArray(rng.normal(T * nH * hd), [T, nH, hd], { dtype: 'bfloat16', device: GPU }));
    const [k, v] = [0, 1].map(() => Tensor.fromArray(rng.normal(T * nKV * hd), [T, nKV, hd], { dtype: 'bfloat16', device: GPU }));
    const opts: AttentionOptions = { cuSeqlens: Tensor.fromArray(cu, [cu.length], { device: GPU }), mask: 'causal' };
    const step = () =>
      tidy(() => {
        const { out, lse } = attention(q, k, v, opts);
        attentionBackward(dout, q, k, v, out, lse, opts);
        synchronize(GPU);
      });
    step(); // warm the allocator's cache
    const before = memoryStats(GPU).bytesInUse;
    for (let i = 0; i < 100; i++) step();
    expect(memoryStats(GPU).bytesInUse).toBe(before);
    for (const t of [q, k, v, dout, opts.cuSeqlens]) t.dispose();
  });
});
