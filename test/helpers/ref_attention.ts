/**
 * Float64 reference attention for the tests. Unlike the kernels it builds the full masked score
 * matrix, and its mask is written from the definitions (document and position of each token), not
 * from the kernels' key ranges.
 */
export interface RefAttentionSpec {
  tokens: number; // T
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  cuSeqlens: ArrayLike<number>;
  mask: 'causal' | 'sliding' | 'ttt';
  window?: number;
  tttStep?: number;
  scale: number;
}

export function refKeys(spec: RefAttentionSpec): number {
  return spec.mask === 'ttt' ? ((spec.tttStep ?? 0) + 1) * spec.tokens : spec.tokens;
}

/** visible[i * Tk + j] = 1 when query i sees key j. */
export function refMask(spec: RefAttentionSpec): Uint8Array {
  const T = spec.tokens;
  const Tk = refKeys(spec);
  const doc = new Int32Array(T);
  const pos = new Int32Array(T);
  const cu = spec.cuSeqlens;
  for (let b = 0; b + 1 < cu.length; b++) {
    for (let i = cu[b]; i < cu[b + 1]; i++) {
      doc[i] = b;
      pos[i] = i - cu[b];
    }
  }
  const visible = new Uint8Array(T * Tk);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < Tk; j++) {
      let ok: boolean;
      if (j < T) {
        ok = doc[j] === doc[i] && pos[j] <= pos[i];
        if (spec.mask === 'sliding') ok = ok && pos[i] - pos[j] < (spec.window ?? 0);
      } else {
        ok = j % T === i; // step r = floor(j / T) >= 1: only the diagonal
      }
      visible[i * Tk + j] = ok ? 1 : 0;
    }
  }
  return visible;
}

/** Scaled scores and probabilities of one head: s[i * Tk + j], p[i * Tk + j] (0 when masked). */
function headProbs(q: ArrayLike<number>, k: ArrayLike<number>, spec: RefAttentionSpec, h: number, visible: Uint8Array) {
  const { tokens: T, numHeads: nH, numKvHeads: nKV, headDim: hd, scale } = spec;
  const Tk = refKeys(spec);
  const g = Math.floor(h / (nH / nKV));
  const p = new Float64Array(T * Tk);
  const lse = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    let m = -Infinity;
    const s = new Float64Array(Tk);
    for (let j = 0; j < Tk; j++) {
      if (!visible[i * Tk + j]) continue;
      let dot = 0;
      for (let c = 0; c < hd; c++) dot += q[(i * nH + h) * hd + c] * k[(j * nKV + g) * hd + c];
      s[j] = dot * scale;
      m = Math.max(m, s[j]);
    }
    let l = 0;
    for (let j = 0; j < Tk; j++) if (visible[i * Tk + j]) l += Math.exp(s[j] - m);
    lse[i] = l > 0 ? m + Math.log(l) : -Infinity;
    for (let j = 0; j < Tk; j++) p[i * Tk + j] = visible[i * Tk + j] ? Math.exp(s[j] - lse[i]) : 0;
  }
  return { p, lse };
}

export function refAttentionForward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, spec: RefAttentionSpec) {
  const { tokens: T, numHeads: nH, numKvHeads: nKV, headDim: hd } = spec;
  const Tk = refKeys(spec);
  const visible = refMask(spec);
  const out = new Float64Array(T * nH * hd);
  const lse = new Float64Array(nH * T);
  for (let h = 0; h < nH; h++) {
    const g = Math.floor(h / (nH / nKV));
    const hp = headProbs(q, k, spec, h, visible);
    for (let i = 0; i < T; i++) {
      lse[h * T + i] = hp.lse[i];
      for (let j = 0; j < Tk; j++) {
        const pij = hp.p[i * Tk + j];
        if (pij === 0) continue;
        for (let c = 0; c < hd; c++) out[(i * nH + h) * hd + c] += pij * v[(j * nKV + g) * hd + c];
      }
    }
  }
  return { out, lse };
}

/** Gradients of sum(dout * out), analytically: dS = P (dP - rowsum(P dP)). */
export function refAttentionBackward(
  dout: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  spec: RefAttentionSpec,
) {
  const { tokens: T, numHeads: nH, numKvHeads: nKV, headDim: hd, scale } = spec;
  const Tk = refKeys(spec);
  const visible = refMask(spec);
  const dq = new Float64Array(T * nH * hd);
  const dk = new Float64Array(Tk * nKV * hd);
  const dv = new Float64Array(Tk * nKV * hd);
  for (let h = 0; h < nH; h++) {
    const g = Math.floor(h / (nH / nKV));
    const { p } = headProbs(q, k, spec, h, visible);
    for (let i = 0; i < T; i++) {
      const dp = new Float64Array(Tk);
      let rowsum = 0;
      for (let j = 0; j < Tk; j++) {
        if (p[i * Tk + j] === 0) continue;
        let dot = 0;
        for (let c = 0; c < hd; c++) dot += dout[(i * nH + h) * hd + c] * v[(j * nKV + g) * hd + c];
        dp[j] = dot;
        rowsum += p[i * Tk + j] * dot;
      }
      for (let j = 0; j < Tk; j++) {
        const pij = p[i * Tk + j];
        if (pij === 0) continue;
        const ds = pij * (dp[j] - rowsum);
        for (let c = 0; c < hd; c++) {
          dq[(i * nH + h) * hd + c] += scale * ds * k[(j * nKV + g) * hd + c];
          dk[(j * nKV + g) * hd + c] += scale * ds * q[(i * nH + h) * hd + c];
          dv[(j * nKV + g) * hd + c] += pij * dout[(i * nH + h) * hd + c];
        }
      }
    }
  }
  return { dq, dk, dv };
}
