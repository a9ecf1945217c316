/**
 * Optimizer ops: the fused AdamW step (torch.optim.AdamW semantics, decoupled weight decay) over
 * fp32 master weights with fp32 moments and an optional 16-bit model copy, and global grad-norm
 * clipping whose norm and coefficient stay on the device (no host sync in a training step).
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, sameDevice } from '../check.js';
import { DTYPE_CODE, FLOAT_DTYPES } from '../dtype.js';
import { Tensor } from '../tensor.js';

export interface AdamWOptions {
  lr: number;
  /** 1 on the first step (bias corrections use it). */
  step: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled: p -= lr * weightDecay * p. Default 0.01, as torch.optim.AdamW. */
  weightDecay?: number;
  /** Written with the updated weights (bfloat16 or float16, same element count as param). */
  modelCopy?: Tensor;
  /** float32 scalar on the device: the grads are multiplied by it (see clipCoefficient). */
  clipCoef?: Tensor;
}

/**
 * One AdamW step in place: param, expAvg, expAvgSq float32 and grad (float32, bfloat16 or
 * float16), all with the same element count (shapes may differ, e.g. flat master weights).
 */
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, options: AdamWOptions): void {
  const op = 'adamwStep';
  const { modelCopy, clipCoef } = options;
  sameDevice(op, { param, grad, expAvg, expAvgSq, modelCopy, clipCoef });
  dtypeIn(op, 'param', param, ['float32']);
  dtypeIn(op, 'expAvg', expAvg, ['float32']);
  dtypeIn(op, 'expAvgSq', expAvgSq, ['float32']);
  floating(op, 'grad', grad);
  const n = param.numel;
  for (const [name, t] of Object.entries({ grad, expAvg, expAvgSq, modelCopy })) {
    if (t && t.numel !== n) fail(op, `${name} is ${t.describe()}; expected ${n} elements like param ${param.describe()}`);
  }
  if (modelCopy) dtypeIn(op, 'modelCopy', modelCopy, FLOAT_DTYPES);
  if (clipCoef) {
    dtypeIn(op, 'clipCoef', clipCoef, ['float32']);
    if (clipCoef.numel !== 1) fail(op, `clipCoef is ${clipCoef.describe()}; expected one element`);
  }
  const beta1 = options.beta1 ?? 0.9;
  const beta2 = options.beta2 ?? 0.999;
  const eps = options.eps ?? 1e-8;
  const weightDecay = options.weightDecay ?? 0.01;
  if (!Number.isInteger(options.step) || options.step < 1) fail(op, `step must be an integer >= 1 (the first step is 1), got ${options.step}`);
  if (!(Number.isFinite(options.lr) && options.lr >= 0)) fail(op, `lr must be finite and >= 0, got ${options.lr}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) fail(op, `betas must lie in [0, 1), got ${beta1}, ${beta2}`);
  if (!(eps > 0 && Number.isFinite(eps))) fail(op, `eps must be finite and > 0, got ${eps}`);
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay))) fail(op, `weightDecay must be finite and >= 0, got ${weightDecay}`);
  native().adamwStep(
    param.storage, grad.storage, DTYPE_CODE[grad.dtype], expAvg.storage, expAvgSq.storage,
    modelCopy?.storage ?? null, DTYPE_CODE[modelCopy?.dtype ?? 'bfloat16'], clipCoef?.storage ?? null,
    n, options.lr, beta1, beta2, eps, weightDecay, options.step,
  );
}

/** sqrt of the sum of squares of every element of `grads` (float32, bfloat16 or float16), as a float32 [] tensor on their device. */
export function globalGradNorm(grads: readonly Tensor[]): Tensor {
  const op = 'globalGradNorm';
  if (grads.length === 0) fail(op, 'needs at least one tensor');
  const named: Record<string, Tensor> = {};
  grads.forEach((g, i) => {
    named[`grads[${i}]`] = g;
    floating(op, `grads[${i}]`, g);
  });
  const device = sameDevice(op, named);
  const acc = Tensor.zeros([], 'float32', device);
  try {
    for (const g of grads) native().sumSquaresAccumulate(g.storage, DTYPE_CODE[g.dtype], g.numel, acc.storage);
    native().gradNormFinish(acc.storage, acc.storage);
  } catch (e) {
    acc.dispose();
    throw e;
  }
  return acc;
}

/** min(1, maxNorm / (norm + 1e-6)) as a float32 [] tensor on norm's device (torch's clip_grad_norm_ coefficient). */
export function clipCoefficient(norm: Tensor, maxNorm: number): Tensor {
  const op = 'clipCoefficient';
  sameDevice(op, { norm });
  dtypeIn(op, 'norm', norm, ['float32']);
  if (norm.numel !== 1) fail(op, `norm is ${norm.describe()}; expected one element`);
  if (!(maxNorm > 0 && Number.isFinite(maxNorm))) fail(op, `maxNorm must be finite and > 0, got ${maxNorm}`);
  const coef = Tensor.empty([], 'float32', norm.device);
  try {
    native().clipCoefficient(norm.storage, coef.storage, maxNorm);
  } catch (e) {
    coef.dispose();
    throw e;
  }
  return coef;
}
