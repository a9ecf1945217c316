/** Float64 references of the norm family (RMSNorm over the last dim), for the kernel tests. */

export interface RmsNormRef {
  y: Float64Array;
  rstd: Float64Array;
}

/** y = h * rstd * w with rstd = 1/sqrt(mean(h^2) + eps), h (rows, cols), w (cols). */
export function rmsnormRef(h: ArrayLike<number>, w: ArrayLike<number>, rows: number, cols: number, eps: number): RmsNormRef {
  const y = new Float64Array(rows * cols);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += h[r * cols + c] ** 2;
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[r * cols + c] = h[r * cols + c] * rs * w[c];
  }
  return { y, rstd };
}

/** Analytic gradients of rmsnormRef given dy (plus dhIn added to dx when given). */
export function rmsnormBackwardRef(
  dy: ArrayLike<number>, h: ArrayLike<number>, w: ArrayLike<number>, rows: number, cols: number, eps: number, dhIn?: ArrayLike<number>,
): { dx: Float64Array; dw: Float64Array } {
  const { rstd } = rmsnormRef(h, w, rows, cols, eps);
  const dx = new Float64Array(rows * cols);
  const dw = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const rs = rstd[r];
    let s = 0;
    for (let c = 0; c < cols; c++) s += dy[r * cols + c] * w[c] * h[r * cols + c];
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      dx[i] = rs * dy[i] * w[c] - (rs ** 3 * s * h[i]) / cols + (dhIn ? dhIn[i] : 0);
      dw[c] += dy[i] * h[i] * rs;
    }
  }
  return { dx, dw };
}
