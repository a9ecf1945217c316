/**
 * Token embedding ops. ids (int32 or int64, any shape) select rows of weight [vocab, hidden].
 * Out-of-range ids: an error on the CPU (naming the id and its position); on CUDA the forward
 * writes zero rows and the backward skips them (checking would need a host sync).
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, rankIs, sameDevice, shapeIs } from '../check.js';
import { Tensor } from '../tensor.js';

/** weight [vocab, hidden], ids [...] -> out [..., hidden] in weight's dtype. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  const op = 'embedding';
  sameDevice(op, { weight, ids });
  floating(op, 'weight', weight);
  rankIs(op, 'weight', weight, 2);
  dtypeIn(op, 'ids', ids, ['int32', 'int64']);
  const [vocab, hidden] = weight.shape;
  const out = Tensor.empty([...ids.shape, hidden], weight.dtype, weight.device);
  native().embedding(weight.storage, ids.storage, out.storage, weight.dtypeCode, ids.dtypeCode, ids.numel, vocab, hidden);
  return out;
}

/**
 * dweight float32 [vocab, hidden] += the scatter-add of dout [..., hidden] by ids [...]; returns
 * dweight. Deterministic on the CPU; fp32 atomicAdd (order varies) on CUDA.
 */
export function embeddingBackward(dout: Tensor, ids: Tensor, dweight: Tensor): Tensor {
  const op = 'embeddingBackward';
  sameDevice(op, { dout, ids, dweight });
  floating(op, 'dout', dout);
  dtypeIn(op, 'ids', ids, ['int32', 'int64']);
  dtypeIn(op, 'dweight', dweight, ['float32']);
  rankIs(op, 'dweight', dweight, 2);
  const [vocab, hidden] = dweight.shape;
  shapeIs(op, 'dout', dout, [...ids.shape, hidden]);
  native().embeddingBackward(dout.storage, ids.storage, dweight.storage, dout.dtypeCode, ids.dtypeCode, ids.numel, vocab, hidden);
  return dweight;
}

/** The gradient of embedding with respect to weight, as a new float32 [vocab, hidden] tensor. */
export function embeddingGrad(dout: Tensor, ids: Tensor, vocab: number): Tensor {
  if (!Number.isInteger(vocab) || vocab < 0) fail('embeddingGrad', `vocab must be a non-negative integer, got ${vocab}`);
  if (dout.rank < 1) fail('embeddingGrad', `dout is ${dout.describe()}; expected rank >= 1`);
  const dweight = Tensor.zeros([vocab, dout.shape[dout.rank - 1]], 'float32', dout.device);
  try {
    return embeddingBackward(dout, ids, dweight);
  } catch (e) {
    dweight.dispose();
    throw e;
  }
}
