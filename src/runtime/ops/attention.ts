/**
 * Prefill/training attention over packed variable-length documents (flash style: no T x T matrix),
 * forward and explicit backward. Semantics in native/kernels/attention.h:
 * q [T, nH, hd], k/v [Tk, nKV, hd] (GQA: head h reads kv head h / (nH / nKV)), cuSeqlens int32
 * [B + 1] cumulative document lengths over T, positions restart at each document.
 * Masks: 'causal' (same document, pos_j <= pos_i), 'sliding' (causal and pos_i - pos_j < window),
 * 'ttt' (EAGLE-3 training-time test at step s: Tk = (s + 1) T, block 0 causal plus key r*T + i for
 * r = 1..s). Outputs out [T, nH, hd] (q's dtype) and lse float32 [nH, T] (natural log).
 */
import { native } from '../binding.js';
import { dtypeIn, fail, rankIs, sameDevice, sameDType, shapeIs } from '../check.js';
import { DTYPE_CODE, type DType } from '../dtype.js';
import { Tensor } from '../tensor.js';

export type AttentionMaskKind = 'causal' | 'sliding' | 'ttt';

export interface AttentionOptions {
  /** int32 [B + 1]: 0, then cumulative document lengths, ending at T; on q's device. */
  cuSeqlens: Tensor;
  mask: AttentionMaskKind;
  /** 'sliding' only: a query sees keys fewer than `window` positions back (itself included). */
  window?: number;
  /** 'ttt' only: the step s >= 0; k and v then hold (s + 1) * T rows, step r's keys at rows r*T.. */
  tttStep?: number;
  /** Softmax scale; default 1 / sqrt(hd). */
  scale?: number;
  /**
   * CUDA kernels: 'auto' (default) the fastest for the device; 'simt' the fp32 SIMT reference kernels;
   * 'mma' the mma.sync flash kernels even where a wgmma forward exists (Hopper, hd 128). For tests.
   */
  kernel?: 'auto' | 'simt' | 'mma';
}

const MASK_CODE: Record<AttentionMaskKind, number> = { causal: 0, sliding: 1, ttt: 2 };
const KERNEL_CODE = { auto: 0, simt: 1, mma: 2 } as const;
const STORAGE_DTYPES: readonly DType[] = ['float32', 'bfloat16'];

interface Dims {
  tokens: number;
  keys: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  batch: number;
  mask: number;
  window: number;
  tttStep: number;
  scale: number;
  impl: number;
}

function checkOptions(op: string, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Dims {
  if (!opts || !opts.cuSeqlens) fail(op, 'options.cuSeqlens (int32 [B + 1]) is required');
  const cu = opts.cuSeqlens;
  rankIs(op, 'q', q, 3);
  rankIs(op, 'k', k, 3);
  const [T, nH, hd] = q.shape;
  const [Tk, nKV, hdk] = k.shape;
  if (hdk !== hd) fail(op, `head dims differ: q is ${q.describe()}, k is ${k.describe()}`);
  shapeIs(op, 'v', v, k.shape);
  if (nKV === 0 || nH % nKV !== 0) fail(op, `q heads (${nH}) must be a multiple of k/v heads (${nKV}): q is ${q.describe()}, k is ${k.describe()}`);
  if (hd === 0) fail(op, `q is ${q.describe()}: head dim must be positive`);
  dtypeIn(op, 'q', q, STORAGE_DTYPES);
  sameDType(op, { q, k, v });
  dtypeIn(op, 'cuSeqlens', cu, ['int32']);
  rankIs(op, 'cuSeqlens', cu, 1);
  const batch = cu.shape[0] - 1;
  if (batch < (T > 0 ? 1 : 0)) fail(op, `cuSeqlens is ${cu.describe()}; expected [B + 1] with B >= 1`);

  const mask = opts.mask;
  if (!(mask in MASK_CODE)) fail(op, `mask must be 'causal', 'sliding' or 'ttt', got ${String(mask)}`);
  if (opts.window !== undefined && mask !== 'sliding') fail(op, `window is only used by mask 'sliding' (mask is '${mask}')`);
  if (opts.tttStep !== undefined && mask !== 'ttt') fail(op, `tttStep is only used by mask 'ttt' (mask is '${mask}')`);
  let window = 0;
  let tttStep = 0;
  if (mask === 'sliding') {
    window = opts.window ?? NaN;
    if (!Number.isInteger(window) || window <= 0) fail(op, `mask 'sliding' needs an integer window > 0, got ${opts.window}`);
  }
  if (mask === 'ttt') {
    tttStep = opts.tttStep ?? NaN;
    if (!Number.isInteger(tttStep) || tttStep < 0) fail(op, `mask 'ttt' needs an integer tttStep >= 0, got ${opts.tttStep}`);
    if (Tk !== (tttStep + 1) * T) fail(op, `TTT step ${tttStep} needs k/v with (step + 1) * T = ${(tttStep + 1) * T} rows, got ${k.describe()} for q ${q.describe()}`);
  } else if (Tk !== T) {
    fail(op, `mask '${mask}' needs as many k/v rows as q rows: q is ${q.describe()}, k is ${k.describe()}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (!Number.isFinite(scale)) fail(op, `scale must be finite, got ${opts.scale}`);
  const kernel = opts.kernel ?? 'auto';
  if (kernel !== 'auto' && kernel !== 'simt' && kernel !== 'mma') fail(op, `kernel must be 'auto', 'simt' or 'mma', got ${String(kernel)}`);

  // Document boundaries are checked here when they live on the CPU; on a GPU that would need a
  // sync, so the kernels instead clamp malformed boundaries (no out-of-bounds access).
  if (cu.device === 'cpu') checkCuSeqlens(op, cu.toArray() as Int32Array, T);
  return {
    tokens: T, keys: Tk, numHeads: nH, numKvHeads: nKV, headDim: hd, batch,
    mask: MASK_CODE[mask], window, tttStep, scale, impl: KERNEL_CODE[kernel],
  };
}

function checkCuSeqlens(op: string, cu: Int32Array, T: number): void {
  let ok = cu[0] === 0 && cu[cu.length - 1] === T;
  for (let b = 0; ok && b + 1 < cu.length; b++) ok = cu[b] <= cu[b + 1];
  if (!ok) fail(op, `cuSeqlens must rise from 0 to T = ${T} without decreasing, got [${Array.from(cu.slice(0, 8)).join(', ')}${cu.length > 8 ? ', ...' : ''}]`);
}

/** Attention forward: returns out [T, nH, hd] (q's dtype) and lse float32 [nH, T]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): { out: Tensor; lse: Tensor } {
  const op = 'attention';
  const device = sameDevice(op, { q, k, v, cuSeqlens: opts?.cuSeqlens });
  const d = checkOptions(op, q, k, v, opts);
  const out = Tensor.empty(q.shape, q.dtype, device);
  const lse = Tensor.empty([d.numHeads, d.tokens], 'float32', device);
  native().attentionForward(
    q.storage, k.storage, v.storage, opts.cuSeqlens.storage, out.storage, lse.storage, DTYPE_CODE[q.dtype],
    d.tokens, d.keys, d.numHeads, d.numKvHeads, d.headDim, d.batch, d.mask, d.window, d.tttStep, d.scale, d.impl,
  );
  return { out, lse };
}

/**
 * Attention backward: gradients of sum(dout * out) for the forward above, given its out and lse.
 * Returns dq [T, nH, hd] and dk, dv [Tk, nKV, hd] (kv gradients summed over each group's heads).
 */
export function attentionBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  opts: AttentionOptions,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'attentionBackward';
  const device = sameDevice(op, { dout, q, k, v, out, lse, cuSeqlens: opts?.cuSeqlens });
  const d = checkOptions(op, q, k, v, opts);
  shapeIs(op, 'dout', dout, q.shape);
  shapeIs(op, 'out', out, q.shape);
  sameDType(op, { q, dout, out });
  dtypeIn(op, 'lse', lse, ['float32']);
  shapeIs(op, 'lse', lse, [d.numHeads, d.tokens]);
  const dq = Tensor.empty(q.shape, q.dtype, device);
  const dk = Tensor.empty(k.shape, k.dtype, device);
  const dv = Tensor.empty(v.shape, v.dtype, device);
  const delta = Tensor.empty([d.numHeads, d.tokens], 'float32', device);
  const dqAccum = device === 'cpu' ? null : Tensor.empty(q.shape, 'float32', device);
  try {
    native().attentionBackward(
      dout.storage, q.storage, k.storage, v.storage, out.storage, lse.storage, opts.cuSeqlens.storage,
      dq.storage, dk.storage, dv.storage, delta.storage, dqAccum?.storage ?? null, DTYPE_CODE[q.dtype],
      d.tokens, d.keys, d.numHeads, d.numKvHeads, d.headDim, d.batch, d.mask, d.window, d.tttStep, d.scale, d.impl,
    );
  } finally {
    // Workspaces go back to the caching allocator; it reuses them in stream order.
    delta.dispose();
    dqAccum?.dispose();
  }
  return { dq, dk, dv };
}

/** cu_seqlens [B + 1] of document ids given per token, where each document is one contiguous run. */
export function cuSeqlensFromIds(ids: ArrayLike<number>): Int32Array {
  const cu = [0];
  const seen = new Set<number>();
  for (let i = 0; i < ids.length; i++) {
    if (i > 0 && ids[i] === ids[i - 1]) continue;
    if (seen.has(ids[i])) fail('cuSeqlensFromIds', `document id ${ids[i]} at token ${i} reappears after another document: documents must be contiguous runs`);
    seen.add(ids[i]);
    if (i > 0) cu.push(i);
  }
  if (ids.length > 0) cu.push(ids.length);
  return Int32Array.from(cu);
}

/**
 * cu_seqlens int32 [B + 1] on docIds' device from document ids int32 [T] (contiguous runs). Reads
 * the ids back to the host (a sync when they live on a GPU).
 */
export function cuSeqlensFromDocumentIds(docIds: Tensor): Tensor {
  const op = 'cuSeqlensFromDocumentIds';
  dtypeIn(op, 'docIds', docIds, ['int32']);
  rankIs(op, 'docIds', docIds, 1);
  const cu = cuSeqlensFromIds(docIds.toArray() as Int32Array);
  return Tensor.fromArray(cu, [cu.length], { dtype: 'int32', device: docIds.device });
}
