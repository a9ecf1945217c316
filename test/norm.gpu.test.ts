import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { addRmsnorm, addRmsnormBackward, rmsnorm, rmsnormBackward } from '../src/runtime/ops/norm.js';
import { hasGpu } from './helpers/gpu.js';
import { relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;

/** Index and values of the first bitwise difference between two host arrays, or null when equal. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x);
  const [ua, ub] = [bits(a), bits(b)];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

// cols cover every launch shape: lane groups of 1..32 (tiny rows, head_dim 64/128), a full warp
// with several packs per lane, a block per row (hidden sizes), rows longer than the register cache
// (re-read path), and odd sizes that force 1-element packs.
const COLS = [1, 7, 8, 64, 100, 128, 256, 264, 520, 1000, 1024, 1032, 4096, 5000, 16384, 24576];
const ROWS = [1, 37, 1000];

/** Elementwise: |a - b| <= rel*|b| + abs. */
function within(a: Float32Array, b: Float32Array, rel: number, abs: number): boolean {
  for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i] - b[i]) <= rel * Math.abs(b[i]) + abs)) return false;
  return true;
}

/**
 * Error of a float32 dx relative to the size of the terms it is computed from: ||a - b|| / ||A||
 * with A = rstd*dy*w (float64, per row, from the reference rstd).
 *
 * Why not ||a - b|| / ||b||: dx = A - B with B = rstd^3*mean(dy*w*h)*h, and any fp32 evaluation of
 * it (the CPU twin included) carries an absolute error of a few 2^-24 * (|A| + |B|) per element
 * (plus 4x the relative rstd difference times ||A||). ||B|| <= ||A|| always (Cauchy-Schwarz:
 * ||B|| = ||A|| * |cos(dy*w, h)| * mean(h^2) / (mean(h^2) + eps)), so ||A|| is the scale of that
 * error. Relative to ||dx|| itself it is unbounded when dy*w is nearly parallel to h: at cols = 1
 * always, dx = A * eps / (h^2 + eps) ~ 2.5e-7 * A for eps = 1e-6 and |h| ~ 2, a few fp32 ulps of A,
 * so two correct fp32 implementations differ by O(10%) of dx (0.14 was seen on an H200; the CPU
 * twin's own formula evaluated with FMA contraction differs from it by 0.065 on that input). For
 * cols >= 7, ||dx|| ~ ||A|| * sqrt(1 - 1/cols) (B is about the projection of A on h), so this
 * measure is within ~8% of the plain relative error there: the check is not loosened.
 */
function dxError(a: Float32Array, b: Float32Array, dy: Float32Array, w: Float32Array, rstd: Float32Array, rows: number, cols: number): number {
  let num = 0;
  let den = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
      num += (a[i] - b[i]) ** 2;
      den += (rstd[r] * dy[i] * w[c]) ** 2;
    }
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** A [rows, cols] tensor whose data starts one element into its allocation (misaligned pointer). */
function shifted(values: Float32Array, rows: number, cols: number, dtype: 'float32' | 'bfloat16', device: 'cpu' | 'cuda:0'): Tensor {
  const buf = new Float32Array(rows * cols + 1);
  buf.set(values, 1);
  const padded = Tensor.fromArray(buf, [rows * cols + 1], { dtype, device });
  return padded.rows(1, rows * cols + 1).reshape([rows, cols]);
}

describe.skipIf(!hasGpu)('rmsnorm on CUDA vs the CPU twin', () => {
  const rng = new Rng(77);

  for (const [xd, wd] of [['float32', 'float32'], ['bfloat16', 'bfloat16'], ['bfloat16', 'float32']] as const) {
    it(`forward and backward, x ${xd}, w ${wd}, every launch shape`, () => {
      for (const rows of ROWS) {
        for (const cols of COLS) {
          if (rows * cols > 8_000_000) continue;
          const n = rows * cols;
          const x = Tensor.fromArray(rng.normal(n, 2), [rows, cols], { dtype: xd });
          const w = Tensor.fromArray(rng.uniform(cols, 0.5, 1.5), [cols], { dtype: wd });
          const dy = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
          const [gx, gw, gdy] = [x.to('cuda:0'), w.to('cuda:0'), dy.to('cuda:0')];
          const ref = rmsnorm(x, w);
          const out = rmsnorm(gx, gw);
          const tag = `rows=${rows} cols=${cols}`;
          // rstd: the CPU sums squares in fp64, the GPU in fp32 per thread then a tree: the
          // difference is a few fp32 roundings of the row sum, ~1e-6 relative.
          expect(relError(f32(out.rstd), f32(ref.rstd)), tag).toBeLessThan(1e-5);
          if (xd === 'float32') {
            expect(relError(f32(out.y), f32(ref.y)), tag).toBeLessThan(1e-5);
          } else {
            // the fp32 values differ by ~1e-6 relative; bf16 rounding can then land one ulp apart
            // (an ulp is 2^-8 to 2^-7 of the value: 8 significant bits).
            expect(within(f32(out.y), f32(ref.y), 2 ** -7, 1e-30), tag).toBe(true);
          }
          const gref = rmsnormBackward(dy, x, w, ref.rstd);
          const g = rmsnormBackward(gdy, gx, gw, out.rstd);
          if (xd === 'float32') {
            // relative to the size of dx's terms, not of dx (see dxError: cols = 1 cancels to noise)
            expect(dxError(f32(g.dx), f32(gref.dx), f32(dy), f32(w), f32(ref.rstd), rows, cols), tag).toBeLessThan(1e-5);
          } else {
            // dx = rstd*dy*w - coef*h: fp32 noise of these terms (~1e-6 of values up to ~10) plus
            // one bf16 rounding step (at most 2^-7 of the value).
            expect(within(f32(g.dx), f32(gref.dx), 2 ** -7, 1e-4), tag).toBe(true);
          }
          // dw sums over rows: fp64 on the CPU, fp32 partials on the GPU; norm-wise the fp32
          // rounding error grows like sqrt(rows) * 2^-24.
          expect(relError(f32(g.dw), f32(gref.dw)), tag).toBeLessThan(1e-5);
          // deterministic: the same bits on a second run
          const again = rmsnormBackward(gdy, gx, gw, out.rstd);
          expect(firstDifference(f32(again.dw), f32(g.dw)), tag).toBeNull();
          expect(firstDifference(f32(again.dx), f32(g.dx)), tag).toBeNull();
          for (const t of [x, w, dy, gx, gw, gdy, ref.y, ref.rstd, out.y, out.rstd, gref.dx, gref.dw, g.dx, g.dw, again.dx, again.dw]) t.dispose();
        }
      }
    });
  }

  it('misaligned tensors take the 1-element path and agree too', () => {
    for (const xd of ['float32', 'bfloat16'] as const) {
      for (const [rows, cols] of [[33, 128], [7, 4096], [3, 16384]]) {
        const xv = rng.normal(rows * cols);
        const dyv = rng.normal(rows * cols);
        const w = Tensor.fromArray(rng.uniform(cols, 0.5, 1.5), [cols], { dtype: xd });
        const gw = w.to('cuda:0');
        const ref = rmsnorm(shifted(xv, rows, cols, xd, 'cpu'), w);
        const out = rmsnorm(shifted(xv, rows, cols, xd, 'cuda:0'), gw);
        expect(within(f32(out.y), f32(ref.y), xd === 'float32' ? 1e-5 : 2 ** -7, 1e-6)).toBe(true);
        const gref = rmsnormBackward(shifted(dyv, rows, cols, xd, 'cpu'), shifted(xv, rows, cols, xd, 'cpu'), w, ref.rstd);
        const g = rmsnormBackward(shifted(dyv, rows, cols, xd, 'cuda:0'), shifted(xv, rows, cols, xd, 'cuda:0'), gw, out.rstd);
        expect(within(f32(g.dx), f32(gref.dx), xd === 'float32' ? 1e-5 : 2 ** -7, 1e-4)).toBe(true);
        expect(relError(f32(g.dw), f32(gref.dw))).toBeLessThan(1e-5);
      }
    }
  });

  it('fused residual add: h bit-exact, y and gradients as for the plain op', () => {
    for (const xd of ['float32', 'bfloat16'] as const) {
      for (const [rows, cols] of [[5, 64], [300, 128], [40, 4096], [3, 5000]]) {
        const n = rows * cols;
        const x = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
        const res = Tensor.fromArray(rng.normal(n, 4), [rows, cols], { dtype: xd });
        const w = Tensor.fromArray(rng.uniform(cols, 0.5, 1.5), [cols], { dtype: 'float32' });
        const dy = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
        const dhIn = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
        const ref = addRmsnorm(x, res, w);
        const out = addRmsnorm(x.to('cuda:0'), res.to('cuda:0'), w.to('cuda:0'));
        // one fp32 add and one rounding on both sides
        expect(firstDifference(f32(out.h), f32(ref.h))).toBeNull();
        expect(within(f32(out.y), f32(ref.y), xd === 'float32' ? 1e-5 : 2 ** -7, 1e-30)).toBe(true);
        const gref = addRmsnormBackward(dy, dhIn, ref.h, w, ref.rstd);
        const g = addRmsnormBackward(dy.to('cuda:0'), dhIn.to('cuda:0'), out.h, w.to('cuda:0'), out.rstd);
        // as above, plus dhIn added in fp32 before the single rounding
        expect(within(f32(g.dx), f32(gref.dx), xd === 'float32' ? 1e-5 : 2 ** -7, 1e-4)).toBe(true);
        expect(relError(f32(g.dw), f32(gref.dw))).toBeLessThan(1e-5);
      }
    }
  });

  // Hidden-size rows stream through the backward's shared-memory ring several rows per block: with
  // thousands of rows every block wraps around the ring (a stage is refilled after its row was read).
  it('many rows per block: plain and fused backward, deterministic', () => {
    for (const [xd, wd] of [['bfloat16', 'bfloat16'], ['bfloat16', 'float32'], ['float32', 'float32']] as const) {
      for (const [rows, cols] of [[3000, 4096], [2000, 4104]]) {
        const n = rows * cols;
        const h = Tensor.fromArray(rng.normal(n, 2), [rows, cols], { dtype: xd });
        const w = Tensor.fromArray(rng.uniform(cols, 0.5, 1.5), [cols], { dtype: wd });
        const dy = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
        const dhIn = Tensor.fromArray(rng.normal(n), [rows, cols], { dtype: xd });
        const [gh, gw, gdy, gdh] = [h.to('cuda:0'), w.to('cuda:0'), dy.to('cuda:0'), dhIn.to('cuda:0')];
        const ref = rmsnorm(h, w);
        const grstd = ref.rstd.to('cuda:0');
        const tag = `${xd}/${wd} rows=${rows} cols=${cols}`;
        const gref = rmsnormBackward(dy, h, w, ref.rstd);
        const g = rmsnormBackward(gdy, gh, gw, grstd);
        const fref = addRmsnormBackward(dy, dhIn, h, w, ref.rstd);
        const fg = addRmsnormBackward(gdy, gdh, gh, gw, grstd);
        if (xd === 'float32') {
          expect(dxError(f32(g.dx), f32(gref.dx), f32(dy), f32(w), f32(ref.rstd), rows, cols), tag).toBeLessThan(1e-5);
          expect(within(f32(fg.dx), f32(fref.dx), 1e-5, 1e-4), tag).toBe(true);
        } else {
          expect(within(f32(g.dx), f32(gref.dx), 2 ** -7, 1e-4), tag).toBe(true);
          expect(within(f32(fg.dx), f32(fref.dx), 2 ** -7, 1e-4), tag).toBe(true);
        }
        expect(relError(f32(g.dw), f32(gref.dw)), tag).toBeLessThan(1e-5);
        expect(relError(f32(fg.dw), f32(fref.dw)), tag).toBeLessThan(1e-5);
        const again = addRmsnormBackward(gdy, gdh, gh, gw, grstd);
        expect(firstDifference(f32(again.dw), f32(fg.dw)), tag).toBeNull();
        expect(firstDifference(f32(again.dx), f32(fg.dx)), tag).toBeNull();
        for (const t of [h, w, dy, dhIn, gh, gw, gdy, gdh, ref.y, ref.rstd, grstd, gref.dx, gref.dw, g.dx, g.dw, fref.dx, fref.dw, fg.dx, fg.dw, again.dx, again.dw])
          t.dispose();
      }
    }
  });

  it('zero rows gives an all-zero dw', () => {
    const x = Tensor.empty([0, 64], 'bfloat16', 'cuda:0');
    const w = Tensor.fromArray(new Float32Array(64).fill(1), [64], { device: 'cuda:0' });
    const { rstd } = rmsnorm(x, w);
    const { dw } = rmsnormBackward(x, x, w, rstd);
    expect(Array.from(f32(dw))).toEqual(new Array(64).fill(0));
  });
});
