/** Float64 references of the optimizer family (native/kernels/optimizer.h). */

export interface AdamWRefState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

export interface AdamWRefHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One step in place, as the AdamW paper / torch.optim.AdamW state it; g already clipped. */
export function adamwRefStep(s: AdamWRefState, g: ArrayLike<number>, h: AdamWRefHyper, step: number): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  for (let i = 0; i < s.p.length; i++) {
    s.p[i] -= h.lr * h.weightDecay * s.p[i];
    s.m[i] = h.beta1 * s.m[i] + (1 - h.beta1) * g[i];
    s.v[i] = h.beta2 * s.v[i] + (1 - h.beta2) * g[i] * g[i];
    s.p[i] -= (h.lr * (s.m[i] / bc1)) / (Math.sqrt(s.v[i] / bc2) + h.eps);
  }
}

/** sqrt(sum of squares) over every value of every array. */
export function gradNormRef(grads: ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** torch.nn.utils.clip_grad_norm_'s coefficient. */
export function clipCoefficientRef(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}
