/**
 * Rotary position embedding ops (Hugging Face Llama/Qwen rotate_half layout) over x [tokens, heads,
 * headDim]. Rotate q and k with one call each. The rotary dimension is 2 * invFreq.numel (partial
 * rotary leaves the rest of each head unchanged). bf16/f16 inputs are rotated in fp32 and rounded
 * once (transformers rounds cos/sin to the input dtype first, so it differs by bf16 rounding noise).
 * cos/sin are the correctly rounded fp32 values, and the CPU and CUDA results are equal bit for bit.
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, rankIs, sameDevice, shapeIs } from '../check.js';
import type { Device } from '../device.js';
import { Tensor } from '../tensor.js';
import { type RopeConfig, ropeInvFreq } from './rope_params.js';

export interface RotaryOptions {
  /** Multiplies cos and sin (ropeInvFreq's attentionScaling); 1 by default. */
  attentionScaling?: number;
  /** Write the result into x itself and return it. */
  inPlace?: boolean;
}

function launch(op: string, x: Tensor, positions: Tensor, invFreq: Tensor, opts: RotaryOptions, inverse: boolean): Tensor {
  sameDevice(op, { x, positions, invFreq });
  floating(op, 'x', x);
  rankIs(op, 'x', x, 3);
  dtypeIn(op, 'positions', positions, ['int32']);
  dtypeIn(op, 'invFreq', invFreq, ['float32']);
  const [tokens, heads, headDim] = x.shape;
  shapeIs(op, 'positions', positions, [tokens]);
  rankIs(op, 'invFreq', invFreq, 1);
  const rotDim = 2 * invFreq.shape[0];
  if (rotDim === 0 || rotDim > headDim) {
    fail(op, `invFreq is ${invFreq.describe()}: 2 * its length must be in [2, headDim ${headDim}] (x is ${x.describe()})`);
  }
  const scaling = opts.attentionScaling ?? 1;
  if (!Number.isFinite(scaling)) fail(op, `attentionScaling must be finite, got ${scaling}`);
  const out = opts.inPlace ? x : Tensor.empty(x.shape, x.dtype, x.device);
  native().rotary(x.storage, out.storage, positions.storage, invFreq.storage, x.dtypeCode, tokens, heads, headDim, rotDim, scaling, inverse);
  return out;
}

/** x [tokens, heads, headDim] rotated by positions int32 [tokens] with invFreq float32 [rotDim / 2]. */
export function rotary(x: Tensor, positions: Tensor, invFreq: Tensor, opts: RotaryOptions = {}): Tensor {
  return launch('rotary', x, positions, invFreq, opts, false);
}

/** The gradient of rotary with respect to x: dout rotated by the negative angles (same scaling). */
export function rotaryBackward(dout: Tensor, positions: Tensor, invFreq: Tensor, opts: RotaryOptions = {}): Tensor {
  return launch('rotaryBackward', dout, positions, invFreq, opts, true);
}

/** ropeInvFreq as a float32 tensor on `device`, with its attention scaling. */
export function ropeTables(config: RopeConfig, device: Device = 'cpu'): { invFreq: Tensor; attentionScaling: number } {
  const p = ropeInvFreq(config);
  return { invFreq: Tensor.fromArray(p.invFreq, [p.invFreq.length], { dtype: 'float32', device }), attentionScaling: p.attentionScaling };
}
