/**
 * Host-side reductions for the TCP backend, over the raw bytes of each rank's tensor in rank order.
 * Floating types are accumulated exactly enough in float64 (rank order, so every run gives the same
 * bits) and rounded once to the storage dtype; int32 and int64 sums wrap like two's-complement
 * hardware (as NCCL's do); max/min propagate NaN.
 */
import { type DType, bf16BitsToFloat, f16BitsToFloat, floatToBf16Bits, floatToF16Bits } from '../dtype.js';
import type { ReduceOp } from './communicator.js';

/** An aligned copy of `bytes` as a fresh ArrayBuffer (frames may slice at any byte offset). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

function combine(a: number, b: number, op: ReduceOp): number {
  switch (op) {
    case 'sum':
    case 'avg':
      return a + b;
    case 'max':
      return Math.max(a, b);
    case 'min':
      return Math.min(a, b);
  }
}

function reduceFloat(values: Float32Array[], op: ReduceOp): Float64Array {
  const acc = Float64Array.from(values[0]);
  for (let r = 1; r < values.length; r++) {
    const v = values[r];
    for (let i = 0; i < acc.length; i++) acc[i] = combine(acc[i], v[i], op);
  }
  if (op === 'avg') for (let i = 0; i < acc.length; i++) acc[i] /= values.length;
  return acc;
}

/**
 * float64 -> float32 rounded to odd (truncate, then set the last bit when inexact). Rounding that
 * once more to bf16/f16 (nearest even) gives the correctly rounded result of the float64 value;
 * plain nearest-even twice could round a value just off a midpoint the wrong way.
 */
function toFloat32RoundOdd(x: Float64Array): Float32Array {
  const out = new Float32Array(x.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = v; // nearest even
    if (out[i] !== v && Number.isFinite(v)) {
      if (Math.abs(out[i]) > Math.abs(v)) bits[i] -= 1; // step the magnitude back below |v|
      bits[i] |= 1; // sticky bit: "inexact"
    }
  }
  return out;
}

/** Reduces `inputs` (one per rank, all the same length) and returns the result's bytes. */
export function reduceBytes(dtype: DType, op: ReduceOp, inputs: Uint8Array[]): Uint8Array {
  switch (dtype) {
    case 'float32': {
      const acc = reduceFloat(
        inputs.map((b) => new Float32Array(aligned(b))),
        op,
      );
      return new Uint8Array(Float32Array.from(acc).buffer);
    }
    case 'bfloat16': {
      const acc = reduceFloat(
        inputs.map((b) => bf16BitsToFloat(new Uint16Array(aligned(b)))),
        op,
      );
      return new Uint8Array(floatToBf16Bits(toFloat32RoundOdd(acc)).buffer);
    }
    case 'float16': {
      const acc = reduceFloat(
        inputs.map((b) => f16BitsToFloat(new Uint16Array(aligned(b)))),
        op,
      );
      return new Uint8Array(floatToF16Bits(toFloat32RoundOdd(acc)).buffer);
    }
    case 'int32': {
      if (op === 'avg') throw new TypeError('avg needs a floating dtype, got int32');
      const acc = new Int32Array(aligned(inputs[0]));
      for (let r = 1; r < inputs.length; r++) {
        const v = new Int32Array(aligned(inputs[r]));
        for (let i = 0; i < acc.length; i++) acc[i] = op === 'sum' ? (acc[i] + v[i]) | 0 : op === 'max' ? Math.max(acc[i], v[i]) : Math.min(acc[i], v[i]);
      }
      return new Uint8Array(acc.buffer);
    }
    case 'int64': {
      if (op === 'avg') throw new TypeError('avg needs a floating dtype, got int64');
      const acc = new BigInt64Array(aligned(inputs[0]));
      for (let r = 1; r < inputs.length; r++) {
        const v = new BigInt64Array(aligned(inputs[r]));
        // BigInt64Array stores modulo 2^64: sums wrap.
        for (let i = 0; i < acc.length; i++) acc[i] = op === 'sum' ? acc[i] + v[i] : op === 'max' ? (v[i] > acc[i] ? v[i] : acc[i]) : v[i] < acc[i] ? v[i] : acc[i];
      }
      return new Uint8Array(acc.buffer);
    }
    default:
      throw new TypeError(`cannot reduce dtype ${dtype}`);
  }
}
