import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { type GateUpLayout, swiglu, swigluBackward, swigluFused, swigluFusedBackward } from '../src/runtime/ops/activation.js';
import { floatToF16Bits, f16BitsToFloat } from '../src/runtime/dtype.js';
import { finiteDifference, maxAbsError, relError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { splitHalves, swigluBackwardRef, swigluRef } from './helpers/ref_activation.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;
const ROUND = {
  float32: (v: Float32Array) => v,
  bfloat16: roundBf16,
  float16: (v: Float32Array) => f16BitsToFloat(floatToF16Bits(v)),
};
// One rounding of the output: half an ulp of the storage type, plus fp32 noise.
const REL = { float32: 1e-6, bfloat16: 2 ** -8, float16: 2 ** -10 };

function within(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, abs: number): boolean {
  for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i] - b[i]) <= rel * Math.abs(b[i]) + abs)) return false;
  return true;
}

describe('swiglu (CPU)', () => {
  const rng = new Rng(5);
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: separate and fused layouts match the float64 reference`, () => {
      const [rows, inter] = [7, 45];
      const gate = ROUND[dtype](rng.normal(rows * inter, 3));
      const up = ROUND[dtype](rng.normal(rows * inter));
      const ref = swigluRef(gate, up);
      const out = swiglu(Tensor.fromArray(gate, [rows, inter], { dtype }), Tensor.fromArray(up, [rows, inter], { dtype }));
      expect(out.dtype).toBe(dtype);
      expect(within(f32(out), ref, REL[dtype], 1e-7)).toBe(true);
      const fused = new Float32Array(rows * 2 * inter);
      for (let r = 0; r < rows; r++) {
        fused.set(gate.subarray(r * inter, (r + 1) * inter), r * 2 * inter);
        fused.set(up.subarray(r * inter, (r + 1) * inter), r * 2 * inter + inter);
      }
      const outF = swigluFused(Tensor.fromArray(fused, [rows, 2 * inter], { dtype }));
      expect(outF.shape).toEqual([rows, inter]);
      // same arithmetic on the same values: identical bits
      expect(Array.from(f32(outF))).toEqual(Array.from(f32(out)));
    });
  }

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: the pairs layout (gate 0, up 0, gate 1, ...) equals the separate one bit for bit`, () => {
      for (const [rows, inter] of [[7, 45], [3, 8], [1, 1], [2, 64]]) {
        const gate = ROUND[dtype](rng.normal(rows * inter, 3));
        const up = ROUND[dtype](rng.normal(rows * inter));
        const pairs = new Float32Array(rows * 2 * inter);
        for (let i = 0; i < rows * inter; i++) {
          const [r, c] = [Math.floor(i / inter), i % inter];
          pairs[r * 2 * inter + 2 * c] = gate[i];
          pairs[r * 2 * inter + 2 * c + 1] = up[i];
        }
        const want = swiglu(Tensor.fromArray(gate, [rows, inter], { dtype }), Tensor.fromArray(up, [rows, inter], { dtype }));
        const got = swigluFused(Tensor.fromArray(pairs, [rows, 2 * inter], { dtype }), 'pairs');
        expect(got.shape).toEqual([rows, inter]);
        expect(Array.from(f32(got))).toEqual(Array.from(f32(want)));
        // and the halves reading of the same bytes is a different function (the layout is honoured)
        if (inter > 1) expect(Array.from(f32(swigluFused(Tensor.fromArray(pairs, [rows, 2 * inter], { dtype }))))).not.toEqual(Array.from(f32(want)));
      }
    });
  }

  it('saturates cleanly: large |gate| gives 0 or gate*up, no NaN', () => {
    const out = swiglu(Tensor.fromArray([-200, -30, 0, 30, 200], [5]), Tensor.fromArray([2, 2, 2, 2, 2], [5]));
    const v = f32(out);
    expect(v[0]).toBeCloseTo(0, 30);
    expect(v[2]).toBe(0);
    expect(v[3]).toBeCloseTo(60, 4);
    expect(v[4]).toBe(400);
  });

  it('every finite bfloat16 gate: silu and its derivative within 4 fp32 ulps of float64', () => {
    // The kernels' exp is their own (activation_math.h, shared with CUDA), so check it over the whole
    // range: about -104 (below which it is 0) through the saturation at large |g|.
    const gate: number[] = [];
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let i = 0; i < 65536; i++) {
      bits[0] = i << 16;
      if (Number.isFinite(asFloat[0])) gate.push(asFloat[0]);
    }
    const n = gate.length;
    const g = Tensor.fromArray(gate, [n]);
    const one = Tensor.fromArray(new Float32Array(n).fill(1), [n]);
    const out = f32(swiglu(g, one));
    const { dgate, dup } = swigluBackward(one, g, one);
    const [dg, du] = [f32(dgate), f32(dup)];
    const ulp = 2 ** -24;
    const bad: string[] = [];
    for (let i = 0; i < n; i++) {
      const x = gate[i];
      const s = 1 / (1 + Math.exp(-x));
      const silu = x * s;
      const dsilu = s * (1 + x * (1 - s));
      // Below g = -87, s = exp(g) is subnormal: its absolute quantum 2^-149, times |g|, adds on.
      const floor = (1 + Math.abs(x)) * 2 ** -149;
      if (!(Math.abs(out[i] - silu) <= 4 * ulp * Math.abs(silu) + floor)) bad.push(`silu(${x}) = ${out[i]}, want ${silu}`);
      if (!(Math.abs(du[i] - silu) <= 4 * ulp * Math.abs(silu) + floor)) bad.push(`dup at ${x} = ${du[i]}, want ${silu}`);
      // silu' cancels near its root (g = -1.2785): its error is relative to its terms, s*(1 + |g|)
      if (!(Math.abs(dg[i] - dsilu) <= 4 * ulp * s * (1 + Math.abs(x)) + floor)) bad.push(`silu'(${x}) = ${dg[i]}, want ${dsilu}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('backward: analytic reference, finite differences and the CPU kernel agree (float32)', () => {
    const [rows, inter] = [5, 33];
    const gate = rng.normal(rows * inter, 2);
    const up = rng.normal(rows * inter);
    const dout = rng.normal(rows * inter);
    const ref = swigluBackwardRef(dout, gate, up);
    const g = swigluBackward(
      Tensor.fromArray(dout, [rows, inter]), Tensor.fromArray(gate, [rows, inter]), Tensor.fromArray(up, [rows, inter]),
    );
    // fp32 math: a few ulps
    expect(relError(f32(g.dgate), ref.dgate)).toBeLessThan(1e-6);
    expect(relError(f32(g.dup), ref.dup)).toBeLessThan(1e-6);
    const loss = (gv: Float64Array, uv: ArrayLike<number>): number => swigluRef(gv, uv).reduce((s, y, i) => s + y * dout[i], 0);
    const idx = [0, 50, rows * inter - 1];
    // central differences in float64, h = 1e-5: error ~1e-10
    const fdGate = finiteDifference((v) => loss(v, up), Float64Array.from(gate), idx, 1e-5);
    const fdUp = finiteDifference((v) => loss(Float64Array.from(gate), v), Float64Array.from(up), idx, 1e-5);
    expect(maxAbsError(fdGate, idx.map((i) => ref.dgate[i]))).toBeLessThan(1e-6);
    expect(maxAbsError(fdUp, idx.map((i) => ref.dup[i]))).toBeLessThan(1e-6);
    expect(maxAbsError(fdGate, idx.map((i) => f32(g.dgate)[i]))).toBeLessThan(1e-5);
  });

  for (const dtype of ['bfloat16', 'float32'] as const) {
    it(`${dtype}: fused backward writes [dgate | dup] per row`, () => {
      const [rows, inter] = [4, 24];
      const fused = ROUND[dtype](rng.normal(rows * 2 * inter, 2));
      const dout = ROUND[dtype](rng.normal(rows * inter));
      const d = swigluFusedBackward(Tensor.fromArray(dout, [rows, inter], { dtype }), Tensor.fromArray(fused, [rows, 2 * inter], { dtype }));
      expect(d.shape).toEqual([rows, 2 * inter]);
      const { gate, up } = splitHalves(fused, rows, inter);
      const ref = swigluBackwardRef(dout, gate, up);
      const got = splitHalves(f32(d), rows, inter);
      expect(within(got.gate, ref.dgate, REL[dtype], 1e-6)).toBe(true);
      expect(within(got.up, ref.dup, REL[dtype], 1e-6)).toBe(true);
    });
  }

  it('names the op, shapes and dtypes when misused', () => {
    const a = Tensor.empty([2, 4]);
    expect(() => swiglu(a, Tensor.empty([2, 5]))).toThrow(/swiglu: up is float32\[2, 5\] on cpu; expected shape \[2, 4\]/);
    expect(() => swiglu(a, Tensor.empty([2, 4], 'bfloat16'))).toThrow(/swiglu: gate is float32\[2, 4\] on cpu but up is bfloat16\[2, 4\] on cpu: dtypes differ/);
    expect(() => swigluFused(Tensor.empty([2, 5]))).toThrow(/swigluFused: gateUp is float32\[2, 5\] on cpu; its last dimension must be even/);
    expect(() => swigluFused(Tensor.empty([2, 4]), 'rows' as GateUpLayout)).toThrow(/swigluFused: layout must be 'halves' or 'pairs', got rows/);
    expect(() => swigluFusedBackward(Tensor.empty([2, 3]), a)).toThrow(/swigluFusedBackward: dout is float32\[2, 3\] on cpu; expected shape \[2, 2\]/);
    expect(() => swiglu(Tensor.empty([2], 'int32'), Tensor.empty([2], 'int32'))).toThrow(/swiglu: gate is int32\[2\] on cpu; expected a floating dtype/);
  });
});
