/**
 * References for the sampling family: Philox-4x32-10 in BigInt-free 32-bit JavaScript, and the
 * Hugging Face filtered distribution (temperature, then top-k keeping boundary ties, then top-p on
 * the renormalised distribution with at least one token kept) in float64.
 */

/** Philox-4x32-10: 10 rounds of the Salmon et al. round function, key bumped between rounds. */
export function philoxRef(counter: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  const mulhilo = (a: number, b: number): [number, number] => {
    const p = BigInt(a) * BigInt(b);
    return [Number(p >> 32n) >>> 0, Number(p & 0xffffffffn) >>> 0];
  };
  for (let round = 0; round < 10; round++) {
    const [hi0, lo0] = mulhilo(0xd2511f53, c0);
    const [hi1, lo1] = mulhilo(0xcd9e8d57, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** Index of the largest value, lowest index on ties, NaN below everything. */
export function argmaxRef(row: ArrayLike<number>): number {
  let best = -1;
  for (let i = 0; i < row.length; i++) {
    if (Number.isNaN(row[i])) continue;
    if (best < 0 || row[i] > row[best]) best = i;
  }
  return best < 0 ? 0 : best;
}

/**
 * The distribution sampling draws from, in float64: probabilities over the row (zeros outside the
 * kept set; one-hot at the argmax for temperature <= 0).
 */
export function filteredProbsRef(row: ArrayLike<number>, temperature: number, topK: number, topP: number): Float64Array {
  const v = row.length;
  const out = new Float64Array(v);
  if (!(temperature > 0)) {
    out[argmaxRef(row)] = 1;
    return out;
  }
  const s = Array.from(row, (l) => Math.fround(l / temperature));
  let kept = s.map((_, i) => i);
  if (topK > 0 && topK < v) {
    const kth = [...s].sort((a, b) => b - a)[topK - 1];
    kept = kept.filter((i) => s[i] >= kth);
  }
  const m = Math.max(...kept.map((i) => s[i]));
  const e = new Float64Array(v);
  let z = 0;
  for (const i of kept) z += e[i] = Math.exp(s[i] - m);
  if (topP < 1) {
    const order = [...kept].sort((a, b) => (s[a] !== s[b] ? s[b] - s[a] : a - b));
    const survivors: number[] = [];
    let before = 0;
    for (const i of order) {
      if (survivors.length > 0 && before >= topP * z) break;
      survivors.push(i);
      before += e[i];
    }
    kept = survivors;
  }
  let zk = 0;
  for (const i of kept) zk += e[i];
  for (const i of kept) out[i] = e[i] / zk;
  return out;
}
