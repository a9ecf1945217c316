/**
 * Elementwise ops: cast, fill/full, add/mul (same shape, or b broadcast over a's leading dims),
 * scale, axpy_ (gradient accumulation) and sum/max reductions (whole tensor, or along the last dim),
 * on the CPU or CUDA. Float math is fp32; reductions accumulate in fp64 and return float32.
 */
import { native } from '../binding.js';
import { fail, floating, sameDevice } from '../check.js';
import { type DType, isFloating } from '../dtype.js';
import type { Device } from '../device.js';
import { type Shape, Tensor, numelOf, shapeString } from '../tensor.js';

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint8: [0, 255],
};

/** Runs `fn` on a freshly allocated output, disposing it if the native call throws. */
function produce(out: Tensor, fn: (out: Tensor) => void): Tensor {
  try {
    fn(out);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

function castable(from: DType, to: DType): boolean {
  if (isFloating(to)) return true; // floats, ints, uint8 and bool all convert to a float
  if (to === 'int32' || to === 'int64') return from === 'int32' || from === 'int64';
  return false;
}

/**
 * x converted to `dtype` (always a new tensor). Floats round to nearest even; int -> float goes
 * through float32; int64 -> int32 wraps. Float -> int is not offered (use argmax or round first).
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const op = 'cast';
  sameDevice(op, { x });
  if (!castable(x.dtype, dtype)) fail(op, `cannot cast ${x.describe()} to ${dtype}`);
  return produce(Tensor.empty(x.shape, dtype, x.device), (y) =>
    native().cast(x.storage, x.dtypeCode, y.storage, y.dtypeCode, x.numel),
  );
}

/** Sets every element of t to value (converted to t's dtype); returns t. */
export function fill_(t: Tensor, value: number): Tensor {
  const op = 'fill_';
  sameDevice(op, { t });
  const range = INT_RANGE[t.dtype];
  if (range && !(Number.isInteger(value) && value >= range[0] && value <= range[1])) {
    fail(op, `${value} is not representable in ${t.describe()}`);
  }
  if (t.dtype === 'bool' && value !== 0 && value !== 1) fail(op, `bool tensors take 0 or 1, got ${value}`);
  native().fill(t.storage, t.dtypeCode, t.numel, value);
  return t;
}

/** A new tensor of `shape` filled with value. */
export function full(shape: Shape, value: number, dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  const t = Tensor.empty(shape, dtype, device);
  return produce(t, () => fill_(t, value));
}

/** b's shape must equal a's, or a trailing part of it ([N] over [M, N]); returns b's element count. */
function broadcastCount(op: string, a: Tensor, b: Tensor): number {
  const offset = a.rank - b.rank;
  const ok = offset >= 0 && b.shape.every((d, i) => d === a.shape[offset + i]);
  if (!ok) fail(op, `b is ${b.describe()}; expected a's shape ${shapeString(a.shape)} or a trailing part of it`);
  if (b.numel === 0 && a.numel > 0) fail(op, `b is ${b.describe()} but a is ${a.describe()}`);
  return b.numel;
}

function binary(op: 'add' | 'mul', a: Tensor, b: Tensor, out?: Tensor): Tensor {
  sameDevice(op, { a, b, out });
  floating(op, 'a', a);
  if (b.dtype !== a.dtype) fail(op, `a and b must share a dtype: a is ${a.describe()}, b is ${b.describe()}`);
  const nb = broadcastCount(op, a, b);
  if (out && (out.dtype !== a.dtype || out.numel !== a.numel || out.rank !== a.rank || out.shape.some((d, i) => d !== a.shape[i]))) {
    fail(op, `out is ${out.describe()}; expected ${a.dtype}${shapeString(a.shape)}`);
  }
  const run = (o: Tensor): void => native()[op](a.storage, b.storage, o.storage, a.dtypeCode, a.numel, Math.max(nb, 1));
  if (out) {
    run(out);
    return out;
  }
  return produce(Tensor.empty(a.shape, a.dtype, a.device), run);
}

/** a + b, with b of a's shape or of a trailing part of it (a bias [N] over [M, N]). `out` may be a. */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('add', a, b, out);
}

/** a * b elementwise, b of a's shape or of a trailing part of it. `out` may be a. */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('mul', a, b, out);
}

/** alpha * x. `out` (x's shape and dtype) may be x itself. */
export function scale(x: Tensor, alpha: number, out?: Tensor): Tensor {
  const op = 'scale';
  sameDevice(op, { x, out });
  floating(op, 'x', x);
  if (!Number.isFinite(alpha)) fail(op, `alpha must be finite, got ${alpha}`);
  if (out && (out.dtype !== x.dtype || out.numel !== x.numel)) fail(op, `out is ${out.describe()}; expected ${x.dtype}${shapeString(x.shape)}`);
  const run = (o: Tensor): void => native().scale(x.storage, o.storage, x.dtypeCode, x.numel, alpha);
  if (out) {
    run(out);
    return out;
  }
  return produce(Tensor.empty(x.shape, x.dtype, x.device), run);
}

/** y += alpha * x (same element count; y may be float32 while x is bfloat16); returns y. */
export function axpy_(y: Tensor, x: Tensor, alpha = 1): Tensor {
  const op = 'axpy_';
  sameDevice(op, { y, x });
  floating(op, 'y', y);
  floating(op, 'x', x);
  if (y.numel !== x.numel) fail(op, `y is ${y.describe()} but x is ${x.describe()}: element counts differ`);
  if (!Number.isFinite(alpha)) fail(op, `alpha must be finite, got ${alpha}`);
  native().axpy(y.storage, y.dtypeCode, x.storage, x.dtypeCode, x.numel, alpha);
  return y;
}

/** Sum of all elements as a float32 scalar tensor (shape []), fp64 accumulation, deterministic. */
export function sum(x: Tensor): Tensor {
  const op = 'sum';
  sameDevice(op, { x });
  floating(op, 'x', x);
  return produce(Tensor.empty([], 'float32', x.device), (o) => native().reduceSum(x.storage, x.dtypeCode, x.numel, o.storage));
}

/** Largest element as a float32 scalar tensor (shape []); NaN if any element is NaN. */
export function max(x: Tensor): Tensor {
  const op = 'max';
  sameDevice(op, { x });
  floating(op, 'x', x);
  if (x.numel === 0) fail(op, `${x.describe()} is empty`);
  return produce(Tensor.empty([], 'float32', x.device), (o) => native().reduceMax(x.storage, x.dtypeCode, x.numel, o.storage));
}

function lastDim(op: 'sumLastDim' | 'maxLastDim', x: Tensor): Tensor {
  sameDevice(op, { x });
  floating(op, 'x', x);
  if (x.rank === 0) fail(op, `${x.describe()} has no last dimension`);
  const cols = x.shape[x.rank - 1];
  const outShape = x.shape.slice(0, -1);
  const rows = numelOf(outShape);
  if (op === 'maxLastDim' && cols === 0 && rows > 0) fail(op, `${x.describe()} has an empty last dimension`);
  const fn = op === 'sumLastDim' ? 'rowSum' : 'rowMax';
  return produce(Tensor.empty(outShape, 'float32', x.device), (o) => native()[fn](x.storage, x.dtypeCode, rows, cols, o.storage));
}

/** x [..., N] -> float32 [...]: sums along the last dimension. */
export function sumLastDim(x: Tensor): Tensor {
  return lastDim('sumLastDim', x);
}

/** x [..., N] -> float32 [...]: maxima along the last dimension (NaN propagates). */
export function maxLastDim(x: Tensor): Tensor {
  return lastDim('maxLastDim', x);
}
