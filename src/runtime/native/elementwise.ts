/**
 * Native surface of the elementwise kernel family (native/kernels/bind_elementwise.cc). Storages are
 * flat and contiguous; `n` counts elements; dtype arguments are DTYPE_CODE numbers.
 */
import type { NativeStorage } from './storage.js';

export interface ElementwiseNative {
  /** y (n) = x (n) converted: float <-> float, int32 <-> int64, int/uint8/bool -> float. */
  cast(x: NativeStorage, xDType: number, y: NativeStorage, yDType: number, n: number): void;
  /** y (n) = value, converted to dtype (any dtype). */
  fill(y: NativeStorage, dtype: number, n: number, value: number): void;
  /** out (n) = a (n) + b (nb), b repeated along a (nb divides n). out may alias a. */
  add(a: NativeStorage, b: NativeStorage, out: NativeStorage, dtype: number, n: number, nb: number): void;
  /** out (n) = a (n) * b (nb), b repeated along a (nb divides n). out may alias a. */
  mul(a: NativeStorage, b: NativeStorage, out: NativeStorage, dtype: number, n: number, nb: number): void;
  /** out (n) = alpha * x (n). out may alias x. */
  scale(x: NativeStorage, out: NativeStorage, dtype: number, n: number, alpha: number): void;
  /** y (n) += alpha * x (n), in fp32; y and x may have different float dtypes. */
  axpy(y: NativeStorage, yDType: number, x: NativeStorage, xDType: number, n: number, alpha: number): void;
  /** out (1, float32) = sum of x (n), fp64 accumulation, deterministic. */
  reduceSum(x: NativeStorage, dtype: number, n: number, out: NativeStorage): void;
  /** out (1, float32) = max of x (n); NaN propagates; -inf when n = 0. */
  reduceMax(x: NativeStorage, dtype: number, n: number, out: NativeStorage): void;
  /** out (rows, float32) = x (rows, cols) summed along cols. */
  rowSum(x: NativeStorage, dtype: number, rows: number, cols: number, out: NativeStorage): void;
  /** out (rows, float32) = max of x (rows, cols) along cols. */
  rowMax(x: NativeStorage, dtype: number, rows: number, cols: number, out: NativeStorage): void;
}
