/**
 * Rows [gate | up] of a host [2n, k] matrix (or a [2n] bias, k = 1) reordered into pairs gate 0,
 * up 0, gate 1, up 1, ...: the layout the model loads (GATE_UP_LAYOUT 'pairs').
 */
export function toPairsRows(v: Float32Array, n: number, k: number): Float32Array {
  if (v.length !== 2 * n * k) throw new RangeError(`toPairsRows: ${v.length} values, expected 2 * ${n} * ${k}`);
  const out = new Float32Array(v.length);
  for (let i = 0; i < n; i++) {
    out.set(v.subarray(i * k, (i + 1) * k), 2 * i * k);
    out.set(v.subarray((n + i) * k, (n + i + 1) * k), (2 * i + 1) * k);
  }
  return out;
}
