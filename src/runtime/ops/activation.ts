/**
 * SwiGLU, the gated MLP activation: out = silu(gate) * up with silu(g) = g * sigmoid(g), and its
 * explicit backward. gate and up are two [..., I] tensors, or one fused [..., 2I] tensor (first
 * half gate, second half up: one GEMM against the concatenated gate/up weight). fp32 math on
 * float32, bfloat16 or float16 storage.
 */
import { native } from '../binding.js';
import { fail, floating, sameDevice, shapeIs } from '../check.js';
import { Tensor } from '../tensor.js';

function lastDim(op: string, name: string, t: Tensor): number {
  if (t.rank < 1) fail(op, `${name} is ${t.describe()}; expected at least one dimension`);
  return t.shape[t.rank - 1];
}

function produce<T>(made: Tensor[], run: () => T): T {
  try {
    return run();
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
}

/** silu(gate) * up for gate, up [..., I] of one dtype. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const op = 'swiglu';
  sameDevice(op, { gate, up });
  floating(op, 'gate', gate);
  if (up.dtype !== gate.dtype) fail(op, `gate is ${gate.describe()} but up is ${up.describe()}: dtypes differ`);
  shapeIs(op, 'up', up, gate.shape);
  const inter = lastDim(op, 'gate', gate);
  const out = Tensor.empty(gate.shape, gate.dtype, gate.device);
  return produce([out], () => {
    native().swiglu(gate.storage, up.storage, out.storage, gate.dtypeCode, inter === 0 ? 0 : gate.numel / inter, inter);
    return out;
  });
}

/** How a fused gateUp [..., 2I] holds its halves: `halves` [gate | up], `pairs` gate 0, up 0, gate 1, up 1, ... */
export type GateUpLayout = 'halves' | 'pairs';

/**
 * silu(gate) * up for the fused gateUp [..., 2I]; returns [..., I]. With layout `halves` (the default)
 * gate = gateUp[..., :I] and up = gateUp[..., I:]; with `pairs` gate = gateUp[..., 0::2] and up =
 * gateUp[..., 1::2] (what a GEMM against gate/up weight rows interleaved by pairs gives).
 */
export function swigluFused(gateUp: Tensor, layout: GateUpLayout = 'halves'): Tensor {
  const op = 'swigluFused';
  if (layout !== 'halves' && layout !== 'pairs') fail(op, `layout must be 'halves' or 'pairs', got ${String(layout)}`);
  sameDevice(op, { gateUp });
  floating(op, 'gateUp', gateUp);
  const two = lastDim(op, 'gateUp', gateUp);
  if (two % 2 !== 0) fail(op, `gateUp is ${gateUp.describe()}; its last dimension must be even (gate | up)`);
  const inter = two / 2;
  const rows = two === 0 ? 0 : gateUp.numel / two;
  const out = Tensor.empty([...gateUp.shape.slice(0, -1), inter], gateUp.dtype, gateUp.device);
  return produce([out], () => {
    native().swiglu(gateUp.storage, null, out.storage, gateUp.dtypeCode, rows, inter, layout === 'pairs');
    return out;
  });
}

/** Gradients of swiglu(gate, up) given dout [..., I]. */
export function swigluBackward(dout: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
  const op = 'swigluBackward';
  sameDevice(op, { dout, gate, up });
  floating(op, 'gate', gate);
  for (const [name, t] of [['up', up], ['dout', dout]] as const) {
    if (t.dtype !== gate.dtype) fail(op, `${name} is ${t.describe()}; expected gate's dtype ${gate.dtype}`);
    shapeIs(op, name, t, gate.shape);
  }
  const inter = lastDim(op, 'gate', gate);
  const dgate = Tensor.empty(gate.shape, gate.dtype, gate.device);
  const dup = Tensor.empty(gate.shape, gate.dtype, gate.device);
  return produce([dgate, dup], () => {
    native().swigluBackward(dout.storage, gate.storage, up.storage, dgate.storage, dup.storage, gate.dtypeCode,
      inter === 0 ? 0 : gate.numel / inter, inter);
    return { dgate, dup };
  });
}

/** Gradient of swigluFused(gateUp) given dout [..., I]: the fused [..., 2I] gradient [dgate | dup]. */
export function swigluFusedBackward(dout: Tensor, gateUp: Tensor): Tensor {
  const op = 'swigluFusedBackward';
  sameDevice(op, { dout, gateUp });
  floating(op, 'gateUp', gateUp);
  const two = lastDim(op, 'gateUp', gateUp);
  if (two % 2 !== 0) fail(op, `gateUp is ${gateUp.describe()}; its last dimension must be even (gate | up)`);
  const inter = two / 2;
  if (dout.dtype !== gateUp.dtype) fail(op, `dout is ${dout.describe()}; expected gateUp's dtype ${gateUp.dtype}`);
  shapeIs(op, 'dout', dout, [...gateUp.shape.slice(0, -1), inter]);
  const rows = two === 0 ? 0 : gateUp.numel / two;
  const dgateUp = Tensor.empty(gateUp.shape, gateUp.dtype, gateUp.device);
  return produce([dgateUp], () => {
    native().swigluBackward(dout.storage, gateUp.storage, null, dgateUp.storage, null, gateUp.dtypeCode, rows, inter);
    return dgateUp;
  });
}
