/** Error measures used by the kernel tests. */

/** ||a - b|| / ||b|| over all elements (b the reference). NaN anywhere gives Infinity. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relError: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** max |a - b| */
export function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsError: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!Number.isFinite(d)) return Infinity;
    if (d > m) m = d;
  }
  return m;
}

/**
 * Central finite difference of scalar f at x (float64): (f(x + h e_i) - f(x - h e_i)) / 2h for the
 * chosen coordinates.
 */
export function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, indices: number[], h = 1e-3): number[] {
  return indices.map((i) => {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i] += h;
    xm[i] -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}

/**
 * Index of the first differing byte of two views, or -1 when they are identical (and the same
 * length). Fast on large buffers, unlike a deep toEqual, which compares element by element.
 */
export function firstByteDifference(a: ArrayBufferView | ArrayBuffer, b: ArrayBufferView | ArrayBuffer): number {
  const ba = a instanceof ArrayBuffer ? Buffer.from(a) : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const bb = b instanceof ArrayBuffer ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (ba.length === bb.length && ba.equals(bb)) return -1;
  const n = Math.min(ba.length, bb.length);
  for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return i;
  return n;
}
