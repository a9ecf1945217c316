import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { floatToF16Bits, f16BitsToFloat } from '../src/runtime/dtype.js';
import { rotary, rotaryBackward, ropeTables } from '../src/runtime/ops/rotary.js';
import { ropeConfigFromHf, ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { finiteDifference, maxAbsError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';

type FloatDType = 'float32' | 'bfloat16' | 'float16';
const round = (v: Float32Array, dtype: FloatDType): Float32Array =>
  dtype === 'bfloat16' ? roundBf16(v) : dtype === 'float16' ? f16BitsToFloat(floatToF16Bits(v)) : Float32Array.from(v);

/** max |a/b - 1| */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] / b[i] - 1));
  return m;
}

// float32 rounding of a few chained float32 operations in transformers: a few 2^-24.
const F32_REL = 4e-7;

describe('ropeInvFreq', () => {
  it('default: theta^(-2i/dim)', () => {
    const { invFreq, attentionScaling } = ropeInvFreq({ theta: 10000, headDim: 64 });
    expect(invFreq.length).toBe(32);
    expect(attentionScaling).toBe(1);
    expect(invFreq[0]).toBe(1);
    // 10000^(-2*16/64) = 10000^-0.5 = 0.01
    expect(Math.abs(invFreq[16] / 0.01 - 1)).toBeLessThan(F32_REL);
    const ref = Array.from({ length: 32 }, (_, i) => Math.pow(10000, (-2 * i) / 64));
    expect(maxRel(invFreq, ref)).toBeLessThan(F32_REL);
  });

  it('partial rotary: int(headDim * factor) dims, and linear scaling divides by factor', () => {
    const { invFreq } = ropeInvFreq({ theta: 10000, headDim: 128, partialRotaryFactor: 0.25 });
    expect(invFreq.length).toBe(16);
    // the exponent uses the rotary dim (32), not headDim: 10000^(-2*8/32) = 0.01
    expect(Math.abs(invFreq[8] / 0.01 - 1)).toBeLessThan(F32_REL);
    const lin = ropeInvFreq({ theta: 10000, headDim: 64, scaling: { ropeType: 'linear', factor: 4 } }).invFreq;
    expect(Math.abs(lin[16] / 0.0025 - 1)).toBeLessThan(F32_REL);
  });

  it('llama3 (Llama 3.1: theta 5e5, factor 8, low 1, high 4, original 8192) matches the hand-derived regimes', () => {
    const { invFreq, attentionScaling } = ropeInvFreq({
      theta: 500000,
      headDim: 128,
      scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    expect(attentionScaling).toBe(1);
    expect(invFreq.length).toBe(64);
    const base = (i: number) => Math.pow(500000, -i / 64); // theta^(-2i/128)
    const wavelen = (i: number) => (2 * Math.PI) / base(i);
    // By hand: wavelen(i) = 2 pi 500000^(i/64) crosses 2048 (= 8192/4) near i = 28.2 and 8192 near i = 35.0
    // (wavelen(35) = 8214.8 > 8192), so i <= 28 keeps the frequency, i >= 35 divides it by 8.
    expect(wavelen(28)).toBeLessThan(2048);
    expect(wavelen(29)).toBeGreaterThan(2048);
    expect(wavelen(34)).toBeLessThan(8192);
    expect(wavelen(35)).toBeGreaterThan(8192);
    for (const i of [0, 5, 28]) expect(Math.abs(invFreq[i] / base(i) - 1)).toBeLessThan(F32_REL);
    for (const i of [35, 50, 63]) expect(Math.abs(invFreq[i] / (base(i) / 8) - 1)).toBeLessThan(F32_REL);
    // medium band: smooth = (8192 / wavelen - 1) / (4 - 1); inv = (1 - smooth) inv / 8 + smooth inv
    for (const i of [29, 31, 34]) {
      const smooth = (8192 / wavelen(i) - 1) / 3;
      expect(smooth).toBeGreaterThan(0);
      expect(smooth).toBeLessThan(1);
      const expected = ((1 - smooth) * base(i)) / 8 + smooth * base(i);
      expect(Math.abs(invFreq[i] / expected - 1)).toBeLessThan(F32_REL);
    }
    // i = 31 worked through: 500000^(-31/64) = 1.73605e-3, wavelen = 3619.25, smooth = 0.421151,
    // inv = 1.73605e-3 * (0.578849 / 8 + 0.421151) = 8.56751e-4
    expect(invFreq[31]).toBeCloseTo(8.56751e-4, 8);
  });

  it('yarn (theta 1e6, factor 4, original 32768, betas 32/1) matches the hand-derived ramp', () => {
    const { invFreq, attentionScaling } = ropeInvFreq({
      theta: 1e6,
      headDim: 128,
      scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 },
    });
    // attention factor 0.1 ln 4 + 1
    expect(attentionScaling).toBeCloseTo(1.1386294361119891, 14);
    // correction dims: 128 ln(32768 / (r 2 pi)) / (2 ln 1e6) = 23.596 (r = 32) and 39.651 (r = 1),
    // truncated to low 23, high 40.
    const corr = (r: number) => (128 * Math.log(32768 / (r * 2 * Math.PI))) / (2 * Math.log(1e6));
    expect(corr(32)).toBeCloseTo(23.596, 3);
    expect(corr(1)).toBeCloseTo(39.651, 3);
    const base = (i: number) => Math.pow(1e6, -i / 64);
    const expected = (i: number) => {
      const ramp = Math.min(Math.max((i - 23) / (40 - 23), 0), 1);
      return (base(i) / 4) * ramp + base(i) * (1 - ramp);
    };
    for (let i = 0; i < 64; i++) expect(Math.abs(invFreq[i] / expected(i) - 1)).toBeLessThan(F32_REL);
    // i <= 23 untouched, i >= 40 divided by 4; i = 30: ramp 7/17, inv = base (1 - 0.75 * 7/17)
    expect(Math.abs(invFreq[10] / base(10) - 1)).toBeLessThan(F32_REL);
    expect(Math.abs(invFreq[45] / (base(45) / 4) - 1)).toBeLessThan(F32_REL);
    expect(invFreq[30]).toBeCloseTo(Math.pow(1e6, -30 / 64) * (1 - (0.75 * 7) / 17), 10);
  });

  it('yarn without truncation ramps between the raw correction dims', () => {
    const { invFreq } = ropeInvFreq({
      theta: 1e6,
      headDim: 128,
      scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768, truncate: false },
    });
    const corr = (r: number) => (128 * Math.log(32768 / (r * 2 * Math.PI))) / (2 * Math.log(1e6));
    const low = corr(32);
    const high = corr(1);
    for (const i of [23, 24, 30, 39, 40]) {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      const b = Math.pow(1e6, -i / 64);
      expect(Math.abs(invFreq[i] / ((b / 4) * ramp + b * (1 - ramp)) - 1)).toBeLessThan(F32_REL);
    }
  });

  it('yarn attention factor: mscale / mscale_all_dim, explicit attention_factor, custom betas', () => {
    const cfg = (extra: object) => ({ theta: 10000, headDim: 64, scaling: { ropeType: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, ...extra } });
    // DeepSeek style: equal mscales cancel
    expect(ropeInvFreq(cfg({ mscale: 0.707, mscaleAllDim: 0.707 })).attentionScaling).toBe(1);
    const g = (m: number) => 0.1 * m * Math.log(40) + 1;
    expect(ropeInvFreq(cfg({ mscale: 1, mscaleAllDim: 0.707 })).attentionScaling).toBeCloseTo(g(1) / g(0.707), 14);
    // mscale_all_dim 0 is falsy in Python: falls back to 0.1 ln(factor) + 1
    expect(ropeInvFreq(cfg({ mscale: 1, mscaleAllDim: 0 })).attentionScaling).toBeCloseTo(g(1), 14);
    expect(ropeInvFreq(cfg({ attentionFactor: 0.5 })).attentionScaling).toBe(0.5);
    // betas 16/2: correction dims 64 ln(4096 / (r 2 pi)) / (2 ln 1e4) = 12.88 -> 12 and 20.11 -> 21
    const { invFreq } = ropeInvFreq(cfg({ betaFast: 16, betaSlow: 2 }));
    const b = (i: number) => Math.pow(10000, -i / 32);
    expect(Math.abs(invFreq[12] / b(12) - 1)).toBeLessThan(F32_REL);
    expect(Math.abs(invFreq[21] / (b(21) / 40) - 1)).toBeLessThan(F32_REL);
    const r15 = (15 - 12) / (21 - 12);
    expect(Math.abs(invFreq[15] / ((b(15) / 40) * r15 + b(15) * (1 - r15)) - 1)).toBeLessThan(F32_REL);
  });

  it('reads Hugging Face configs written by transformers 4 and 5 alike', () => {
    const v4 = ropeConfigFromHf({
      hidden_size: 4096, num_attention_heads: 32, rope_theta: 500000, max_position_embeddings: 131072,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    const v5 = ropeConfigFromHf({
      hidden_size: 4096, num_attention_heads: 32, max_position_embeddings: 131072,
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    expect(v4.headDim).toBe(128);
    expect(v4.theta).toBe(500000);
    expect(Array.from(ropeInvFreq(v4).invFreq)).toEqual(Array.from(ropeInvFreq(v5).invFreq));
    const legacy = ropeConfigFromHf({ head_dim: 64, rope_theta: 1e4, rope_scaling: { type: 'linear', factor: 2 } });
    expect(legacy.scaling?.ropeType).toBe('linear');
  });

  it('refuses unknown or incomplete configurations', () => {
    expect(() => ropeInvFreq({ theta: 1e4, headDim: 64, scaling: { ropeType: 'dynamic', factor: 2 } })).toThrow(/unsupported rope_type 'dynamic'/);
    expect(() => ropeInvFreq({ theta: 1e4, headDim: 64, scaling: { ropeType: 'llama3', factor: 8 } })).toThrow(/llama3' needs a finite lowFreqFactor/);
    expect(() => ropeInvFreq({ theta: 1e4, headDim: 64, scaling: { ropeType: 'yarn', factor: 8 } })).toThrow(/originalMaxPositionEmbeddings/);
    expect(() => ropeInvFreq({ theta: 1e4, headDim: 64, partialRotaryFactor: 0.03 })).toThrow(/rotary dim 1/);
  });
});

/** float64 reference of the kernel: the fp32 angle fround(pos * invFreq[j]), then exact cos/sin. */
function rotaryRef(x: ArrayLike<number>, pos: Int32Array, inv: Float32Array, heads: number, hd: number, scaling: number, sign = 1): Float64Array {
  const out = new Float64Array(x.length);
  const half = inv.length;
  for (let t = 0; t < pos.length; t++) {
    for (let h = 0; h < heads; h++) {
      const b = (t * heads + h) * hd;
      for (let j = 0; j < half; j++) {
        const a = Math.fround(pos[t] * inv[j]);
        const c = Math.cos(a) * scaling;
        const s = sign * Math.sin(a) * scaling;
        out[b + j] = x[b + j] * c - x[b + j + half] * s;
        out[b + j + half] = x[b + j + half] * c + x[b + j] * s;
      }
      for (let i = 2 * half; i < hd; i++) out[b + i] = x[b + i];
    }
  }
  return out;
}

describe('rotary (CPU)', () => {
  const rng = new Rng(7);
  const llama3 = ropeInvFreq({
    theta: 500000, headDim: 128,
    scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  }).invFreq;

  for (const dtype of ['float32', 'bfloat16', 'float16'] as FloatDType[]) {
    it(`matches the float64 reference (${dtype}, positions up to 1e5, scaling 1.25)`, () => {
      const T = 13, H = 3, hd = 128;
      const x = round(rng.normal(T * H * hd), dtype);
      const pos = Int32Array.from([0, 1, 2, 7, 100, 4095, 8191, 8192, 32768, 99999, 5, 3, 131071]);
      const ref = rotaryRef(x, pos, llama3, H, hd, 1.25);
      const xt = Tensor.fromArray(x, [T, H, hd], { dtype });
      const out = rotary(xt, Tensor.fromArray(pos, [T]), Tensor.fromArray(llama3, [64]), { attentionScaling: 1.25 });
      expect(out.shape).toEqual([T, H, hd]);
      expect(out.dtype).toBe(dtype);
      // Per element: fp32 sin/cos/products cost a few 1e-7 of |x| ~ 4 (1e-5 covers it); bf16 / f16 add
      // one output rounding, at most 2^-9 / 2^-12 of |out| (bounded by twice that).
      const rel = dtype === 'float32' ? 0 : dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;
      const o = out.toArray() as Float32Array;
      let worst = 0;
      for (let i = 0; i < o.length; i++) worst = Math.max(worst, Math.abs(o[i] - ref[i]) - rel * Math.abs(ref[i]));
      expect(worst).toBeLessThan(1e-5);
    });
  }

  it('leaves the dims past the rotary dim unchanged (partial rotary) and works in place', () => {
    const T = 5, H = 2, hd = 96;
    const inv = ropeInvFreq({ theta: 10000, headDim: hd, partialRotaryFactor: 0.5 }).invFreq; // rot dim 48
    const x = rng.normal(T * H * hd);
    const pos = Int32Array.from([3, 1, 4, 1, 5]);
    const xt = Tensor.fromArray(x, [T, H, hd]);
    const out = rotary(xt, Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [24]));
    const o = out.toArray() as Float32Array;
    for (let t = 0; t < T * H; t++) for (let i = 48; i < hd; i++) expect(o[t * hd + i]).toBe(x[t * hd + i]);
    expect(maxAbsError(o, rotaryRef(x, pos, inv, H, hd, 1))).toBeLessThan(1e-5);
    const same = rotary(xt, Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [24]), { inPlace: true });
    expect(same).toBe(xt);
    expect(Array.from(xt.toArray() as Float32Array)).toEqual(Array.from(o));
  });

  it('backward: rotation by the negative angle, equal to finite differences of the reference', () => {
    const T = 4, H = 2, hd = 16, s = 1.3;
    const inv = ropeInvFreq({ theta: 10000, headDim: hd }).invFreq;
    const pos = Int32Array.from([0, 9, 2, 1000]);
    const x = Float64Array.from(rng.normal(T * H * hd));
    const w = rng.normal(T * H * hd); // loss = sum(w * rotary(x))
    const loss = (xx: Float64Array) => rotaryRef(xx, pos, inv, H, hd, s).reduce((acc, v, i) => acc + v * w[i], 0);
    const idx = [0, 5, 8, 13, 31, 40, 77, 100, 127];
    const fd = finiteDifference(loss, x, idx);
    const dx = rotaryBackward(Tensor.fromArray(w, [T, H, hd]), Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [inv.length]), { attentionScaling: s }).toArray() as Float32Array;
    // the loss is linear in x: central differences are exact up to float64 cancellation (~1e-12)
    // and the kernel's fp32 math (~1e-6 relative)
    idx.forEach((i, k) => expect(Math.abs(dx[i] - fd[k])).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd[k]))));
    // and the analytic CPU backward against the float64 reference of R(-a) w
    expect(maxAbsError(dx, rotaryRef(w, pos, inv, H, hd, s, -1))).toBeLessThan(1e-5);
    // round trip: backward(forward(x)) = s^2 x
    const xt = Tensor.fromArray(Float32Array.from(x), [T, H, hd]);
    const back = rotaryBackward(rotary(xt, Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [inv.length]), { attentionScaling: s }),
      Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [inv.length]), { attentionScaling: s }).toArray() as Float32Array;
    expect(maxAbsError(back, Float64Array.from(x, (v) => v * s * s))).toBeLessThan(1e-5);
  });

  it('cos and sin are the correctly rounded cos and sin of the fp32 angle, for any finite angle', () => {
    // x = (1, 0) per pair with scaling 1 makes the outputs exactly (cos a, sin a) (rotary_math.h:
    // fma(1, c, -(0 s)) = c, fma(0, c, 1 s) = s). Math.cos/sin are within 1 ulp of fp64, so their
    // fp32 rounding is the correctly rounded value unless the true one lies within 2^-53 of an fp32
    // rounding boundary (chance ~2^-28 per value). Angles from 1e-30 to ~2e38, both signs, cover
    // every window of the Payne-Hanek reduction (pi/2 multiples included: 710, 102943 rad).
    const T = 64, half = 64;
    const pos = Int32Array.from([0, 1, -1, 355, 710, 102943, 131071, 2 ** 31 - 1, -(2 ** 31), ...rng.int(T - 9, -(2 ** 31), 2 ** 31 - 1)]);
    const inv = Float32Array.from({ length: half }, (_, j) => (j < 4 ? [1, 0.5, Math.PI / 2, 1e-30][j] : 10 ** (-30 + (59 * (j - 4)) / (half - 5))));
    const x = new Float32Array(T * 2 * half);
    for (let t = 0; t < T; t++) x.fill(1, t * 2 * half, t * 2 * half + half);
    const args = [Tensor.fromArray(pos, [T]), Tensor.fromArray(inv, [half])] as const;
    const fwd = rotary(Tensor.fromArray(x, [T, 1, 2 * half]), ...args).toArray() as Float32Array;
    const bwd = rotaryBackward(Tensor.fromArray(x, [T, 1, 2 * half]), ...args).toArray() as Float32Array;
    let checked = 0;
    const wrong: string[] = [];
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < half; j++) {
        const a = Math.fround(Math.fround(pos[t]) * inv[j]); // the kernel's fp32 product (exact in fp64, rounded once)
        if (!Number.isFinite(a)) continue;
        const b = t * 2 * half + j;
        const got = [fwd[b], fwd[b + half], bwd[b + half]];
        const want = [Math.cos(a), Math.sin(a), -Math.sin(a)].map(Math.fround);
        // (=== makes -0 equal +0: at a = 0 the backward's 0 * c + (-0) is +0)
        if (got.some((v, k) => v !== want[k])) wrong.push(`angle ${a}: ${got} vs ${want}`);
        checked++;
      }
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(checked).toBeGreaterThan(3500);
    // a non-finite angle gives NaN, like sincosf
    const nan = rotary(Tensor.fromArray(Float32Array.from([1, 0]), [1, 1, 2]), Tensor.fromArray(Int32Array.from([2]), [1]),
      Tensor.fromArray(Float32Array.from([3e38]), [1])).toArray() as Float32Array;
    expect(Array.from(nan).every(Number.isNaN)).toBe(true);
  });

  it('ropeTables builds the float32 table and its scaling', () => {
    const t = ropeTables({ theta: 1e6, headDim: 64, scaling: { ropeType: 'yarn', factor: 2, originalMaxPositionEmbeddings: 4096 } });
    expect(t.invFreq.shape).toEqual([32]);
    expect(t.invFreq.dtype).toBe('float32');
    expect(t.attentionScaling).toBeCloseTo(0.1 * Math.log(2) + 1, 14);
  });

  it('names the op, shapes and dtypes when misused', () => {
    const x = Tensor.fromArray(rng.normal(2 * 2 * 8), [2, 2, 8]);
    const inv = Tensor.fromArray(new Float32Array([1, 0.1, 0.01, 0.001]), [4]);
    const pos = Tensor.fromArray(Int32Array.from([0, 1]), [2]);
    expect(() => rotary(x, Tensor.fromArray([0, 1], [2]), inv)).toThrow(/rotary: positions is float32\[2\] on cpu; expected dtype int32/);
    expect(() => rotary(x, Tensor.fromArray(Int32Array.from([0, 1, 2]), [3]), inv)).toThrow(/rotary: positions is int32\[3\] on cpu; expected shape \[2\]/);
    expect(() => rotary(x, pos, Tensor.fromArray(new Float32Array(5), [5]))).toThrow(/rotary: invFreq is float32\[5\] on cpu: 2 \* its length must be in \[2, headDim 8\]/);
    expect(() => rotary(x.reshape([4, 8]), pos, inv)).toThrow(/rotary: x is float32\[4, 8\] on cpu; expected rank 3/);
    expect(() => rotary(Tensor.fromArray(Int32Array.from([1, 2]), [1, 1, 2]), pos.rows(0, 1), inv)).toThrow(/expected a floating dtype/);
    expect(() => rotaryBackward(x, pos, Tensor.fromArray(Int32Array.from([1, 2]), [2]))).toThrow(/rotaryBackward: invFreq is int32\[2\] on cpu; expected dtype float32/);
  });
});
