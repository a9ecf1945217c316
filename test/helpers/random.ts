/** Seeded random inputs for tests: the same seed gives the same values on every machine. */
export class Rng {
  private s: number;
  constructor(seed = 1234) {
    this.s = seed >>> 0 || 1;
  }
  /** Uniform in [0, 1) (xorshift32). */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x / 4294967296;
  }
  uniform(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }
  /** Standard normal (Box-Muller) scaled by `std`. */
  normal(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(this.next(), 1e-12);
      const v = this.next();
      out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return out;
  }
  int(n: number, lo: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + Math.floor((hi - lo) * this.next());
    return out;
  }
}

/** Values rounded through bf16 (so a float64 reference sees exactly what the kernel sees). */
export function roundBf16(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  const u = new Uint32Array(out.buffer);
  out.set(values);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return out;
}
