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
