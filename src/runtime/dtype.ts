/** Element types. The numeric codes match native/src/dtype.h. */
export type DType = 'float32' | 'bfloat16' | 'float16' | 'int32' | 'int64' | 'uint8' | 'bool';

export const DTYPE_CODE: Record<DType, number> = {
  float32: 0,
  bfloat16: 1,
  float16: 2,
  int32: 3,
  int64: 4,
  uint8: 5,
  bool: 6,
};

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  bfloat16: 2,
  float16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  bool: 1,
};

export const FLOAT_DTYPES: readonly DType[] = ['float32', 'bfloat16', 'float16'];

export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16';
}

export function parseDType(name: string): DType {
  const aliases: Record<string, DType> = {
    float32: 'float32', f32: 'float32', fp32: 'float32', float: 'float32',
    bfloat16: 'bfloat16', bf16: 'bfloat16',
    float16: 'float16', f16: 'float16', fp16: 'float16', half: 'float16',
    int32: 'int32', i32: 'int32', int64: 'int64', i64: 'int64',
    uint8: 'uint8', u8: 'uint8', bool: 'bool',
  };
  const d = aliases[name.toLowerCase()];
  if (!d) throw new TypeError(`unknown dtype '${name}': use one of ${Object.keys(DTYPE_CODE).join(', ')}`);
  return d;
}

/** Host arrays that hold each dtype: half types are exposed as float32 values. */
export type HostArray = Float32Array | Int32Array | BigInt64Array | Uint8Array;

/** Round-to-nearest-even float32 -> bfloat16 bits, as native/src/dtype.h does. */
export function floatToBf16Bits(values: Float32Array): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const u = u32[i];
    if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) {
      out[i] = ((u >>> 16) | 0x40) & 0xffff;
    } else {
      out[i] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return out;
}

export function bf16BitsToFloat(bits: Uint16Array): Float32Array {
  const u32 = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return new Float32Array(u32.buffer);
}

export function floatToF16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const rawExp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    const exp = rawExp - 127 + 15;
    if (rawExp === 0xff) { out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); continue; }
    if (exp >= 31) { out[i] = sign | 0x7c00; continue; }
    if (exp <= 0) {
      if (exp < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - exp;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && (half & 1))) half++;
      out[i] = sign | half;
      continue;
    }
    let half = sign | (exp << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
    out[i] = half;
  }
  return out;
}

export function f16BitsToFloat(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) out[i] = sign * mant * 2 ** -24;
    else if (exp === 31) out[i] = mant ? NaN : sign * Infinity;
    else out[i] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}
