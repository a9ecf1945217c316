/** Float64 references of the activation family (SwiGLU), for the kernel tests. */

const sigmoid = (g: number): number => 1 / (1 + Math.exp(-g));

/** out = silu(gate) * up elementwise. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => gate[i] * sigmoid(gate[i]) * up[i]);
}

/** Analytic gradients of swigluRef given dout. */
export function swigluBackwardRef(dout: ArrayLike<number>, gate: ArrayLike<number>, up: ArrayLike<number>): { dgate: Float64Array; dup: Float64Array } {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const s = sigmoid(gate[i]);
    dgate[i] = dout[i] * up[i] * s * (1 + gate[i] * (1 - s));
    dup[i] = dout[i] * gate[i] * s;
  }
  return { dgate, dup };
}

/** Splits a fused [rows, 2*inter] array into its gate and up halves. */
export function splitHalves(fused: ArrayLike<number>, rows: number, inter: number): { gate: Float64Array; up: Float64Array } {
  const gate = new Float64Array(rows * inter);
  const up = new Float64Array(rows * inter);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < inter; c++) {
      gate[r * inter + c] = fused[r * 2 * inter + c];
      up[r * inter + c] = fused[r * 2 * inter + inter + c];
    }
  }
  return { gate, up };
}
