/** Float64 references of the loss family (native/kernels/loss.h), written for clarity, not speed. */

type Values = ArrayLike<number>;

/** softmax (or log_softmax) of each row of x [rows, cols]. */
export function softmaxRef(x: Values, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    const lse = m + Math.log(s);
    for (let c = 0; c < cols; c++) {
      const z = x[r * cols + c] - lse;
      out[r * cols + c] = log ? z : Math.exp(z);
    }
  }
  return out;
}

/** Gradient of sum(dy * f(x)) with f = softmax or log_softmax, from y = f(x). */
export function softmaxBackwardRef(y: Values, dy: Values, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += log ? dy[r * cols + c] : dy[r * cols + c] * y[r * cols + c];
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = log ? dy[i] - Math.exp(y[i]) * s : y[i] * (dy[i] - s);
    }
  }
  return out;
}

/** x [rows, k] @ w [n, k]^T -> [rows, n]. */
export function linearRef(x: Values, w: Values, rows: number, n: number, k: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += x[r * k + l] * w[j * k + l];
      out[r * n + j] = s;
    }
  return out;
}

export interface FusedRef {
  lossSum: number;
  tokenLoss: Float64Array;
  argmaxMatch?: Uint8Array;
  /** [T, H] gradient of gradScale * lossSum w.r.t. h */
  dh: Float64Array;
  /** [V, H] gradient of gradScale * lossSum w.r.t. w */
  dW: Float64Array;
}

function argmax(row: Float64Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** dh = dz @ w and dW = dz^T @ h for dz [T, V]. */
function projectGrads(dz: Float64Array, h: Values, w: Values, T: number, V: number, H: number): { dh: Float64Array; dW: Float64Array } {
  const dh = new Float64Array(T * H);
  const dW = new Float64Array(V * H);
  for (let t = 0; t < T; t++)
    for (let v = 0; v < V; v++) {
      const g = dz[t * V + v];
      if (g === 0) continue;
      for (let k = 0; k < H; k++) {
        dh[t * H + k] += g * w[v * H + k];
        dW[v * H + k] += g * h[t * H + k];
      }
    }
  return { dh, dW };
}

/** Cross-entropy of h [T, H] @ w [V, H]^T against targets, weighted; ignored tokens (weight 0) report 0. */
export function crossEntropyRef(
  h: Values, w: Values, targets: Values, weights: Values, T: number, V: number, H: number, gradScale = 1,
): FusedRef {
  const logits = linearRef(h, w, T, V, H);
  const logq = softmaxRef(logits, T, V, true);
  const tokenLoss = new Float64Array(T);
  const dz = new Float64Array(T * V);
  let lossSum = 0;
  for (let t = 0; t < T; t++) {
    if (weights[t] === 0) continue;
    const y = targets[t];
    tokenLoss[t] = -logq[t * V + y];
    lossSum += weights[t] * tokenLoss[t];
    for (let v = 0; v < V; v++) dz[t * V + v] = weights[t] * gradScale * (Math.exp(logq[t * V + v]) - (v === y ? 1 : 0));
  }
  return { lossSum, tokenLoss, ...projectGrads(dz, h, w, T, V, H) };
}

/** Forward KL(softmax(ht @ wt^T) || softmax(h @ w^T)) per token, weighted; every token reports its KL. */
export function klRef(
  h: Values, w: Values, ht: Values, wt: Values, weights: Values, T: number, V: number, H: number, Ht: number, gradScale = 1,
): FusedRef {
  const logq = softmaxRef(linearRef(h, w, T, V, H), T, V, true);
  const logp = softmaxRef(linearRef(ht, wt, T, V, Ht), T, V, true);
  const tokenLoss = new Float64Array(T);
  const argmaxMatch = new Uint8Array(T);
  const dz = new Float64Array(T * V);
  let lossSum = 0;
  for (let t = 0; t < T; t++) {
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const i = t * V + v;
      kl += Math.exp(logp[i]) * (logp[i] - logq[i]);
      if (weights[t] !== 0) dz[i] = weights[t] * gradScale * (Math.exp(logq[i]) - Math.exp(logp[i]));
    }
    tokenLoss[t] = kl;
    if (weights[t] !== 0) lossSum += weights[t] * kl;
    argmaxMatch[t] = argmax(logq.subarray(t * V, (t + 1) * V)) === argmax(logp.subarray(t * V, (t + 1) * V)) ? 1 : 0;
  }
  return { lossSum, tokenLoss, argmaxMatch, ...projectGrads(dz, h, w, T, V, H) };
}
