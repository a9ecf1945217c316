/**
 * Decode attention over a paged KV cache (vLLM layout). The caches are [numBlocks, blockSize,
 * kvHeads, headDim]; a sequence's tokens live in the blocks its row of blockTable lists, token i in
 * block blockTable[b][i / blockSize] at offset i % blockSize (slot = block * blockSize + offset).
 * Write the new tokens with cacheWrite first, then pagedAttention reads them back.
 *
 * On CUDA the attention kernel starts under the tail of the kernel before it and reads seqLens, the
 * block table and every cached key but the newest `queries` of each sequence before waiting for it
 * (native paged_attention.h): only those newest keys (and q) may come from the op just before.
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, rankIs, sameDevice, sameDType, shapeIs } from '../check.js';
import { Tensor, shapeString } from '../tensor.js';

/**
 * Stores k, v [tokens, kvHeads, headDim] into the caches at slotMapping int32 [tokens]; slot -1
 * skips a token (padding). Other out-of-range slots: an error on the CPU, skipped on CUDA.
 */
export function cacheWrite(kCache: Tensor, vCache: Tensor, k: Tensor, v: Tensor, slotMapping: Tensor): void {
  const op = 'cacheWrite';
  sameDevice(op, { kCache, vCache, k, v, slotMapping });
  floating(op, 'kCache', kCache);
  sameDType(op, { kCache, vCache, k, v });
  rankIs(op, 'kCache', kCache, 4);
  const [numBlocks, blockSize, kvHeads, headDim] = kCache.shape;
  shapeIs(op, 'vCache', vCache, kCache.shape);
  rankIs(op, 'k', k, 3);
  const tokens = k.shape[0];
  shapeIs(op, 'k', k, [tokens, kvHeads, headDim]);
  shapeIs(op, 'v', v, [tokens, kvHeads, headDim]);
  dtypeIn(op, 'slotMapping', slotMapping, ['int32']);
  shapeIs(op, 'slotMapping', slotMapping, [tokens]);
  if (numBlocks === 0 || blockSize === 0 || kvHeads === 0 || headDim === 0) fail(op, `kCache ${kCache.describe()} is empty`);
  native().cacheWrite(k.storage, v.storage, kCache.storage, vCache.storage, slotMapping.storage, k.dtypeCode, tokens, numBlocks, blockSize, kvHeads, headDim);
}

export interface PagedAttentionOptions {
  /** Multiplies q.k before the softmax; headDim^-0.5 by default. */
  scale?: number;
  /** Sliding window: each query sees only its last `window` tokens (itself included). 0/absent: all. */
  window?: number;
  /** CUDA key partitions per sequence (split-K); pagedAttentionSplits by default. The CPU ignores it. */
  numSplits?: number;
  /** Write into this tensor (q's shape, dtype and device) instead of a new one: for CUDA graphs. */
  out?: Tensor;
}

/**
 * The default number of CUDA key partitions over the table's capacity (maxBlocks * blockSize,
 * host-known, so a captured graph stays valid for any seqLens): a split per 8 tokens (one pass of
 * a warp's key loop), but no more than 8 blocks per multiprocessor of an H200/H100 (132) over
 * batch * kvHeads, and at most 256. A warp walks its split's keys with dependent loads, so at decode
 * sizes the time is the number of passes, not the bytes: on an H200 (ncu, 2026-11-28) batch-1
 * decode with 8 kv heads spent ~50 us a layer here with 8 blocks of 256 tokens, and 13.4 us with
 * 9 splits of 32 tokens (context 256); a split per 16 tokens instead of 8 replayed a decode step in
 * the same 4.294 ms.
 */
export function pagedAttentionSplits(capacity: number, batch: number, kvHeads: number): number {
  const byLength = Math.ceil(capacity / 8);
  const byParallelism = Math.max(1, Math.ceil((8 * 132) / Math.max(1, batch * kvHeads)));
  return Math.max(1, Math.min(byLength, 256, byParallelism));
}

/**
 * Attention of q [batch, heads, headDim] (decode) or [batch, queries, heads, headDim] (verifying
 * `queries` drafted tokens) over the paged caches. Sequence b holds seqLens[b] tokens, the new ones
 * included; query t sits at position seqLens[b] - queries + t and sees tokens [0, that position]
 * (causal), or only the last `window` of them. GQA: heads must be a multiple of kvHeads. A query with
 * no keys (seqLens[b] - queries + t < 0, e.g. a padded entry with seqLens 0) gives zeros.
 * Returns out with q's shape and dtype.
 */
export function pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, blockTable: Tensor, seqLens: Tensor, opts: PagedAttentionOptions = {}): Tensor {
  const op = 'pagedAttention';
  const device = sameDevice(op, { q, kCache, vCache, blockTable, seqLens, out: opts.out });
  floating(op, 'q', q);
  sameDType(op, { q, kCache, vCache });
  if (q.rank !== 3 && q.rank !== 4) fail(op, `q is ${q.describe()}; expected [batch, heads, headDim] or [batch, queries, heads, headDim]`);
  const [batch, queries, heads, headDim] = q.rank === 3 ? [q.shape[0], 1, q.shape[1], q.shape[2]] : q.shape;
  rankIs(op, 'kCache', kCache, 4);
  const [numBlocks, blockSize, kvHeads] = kCache.shape;
  shapeIs(op, 'kCache', kCache, [-1, -1, -1, headDim]);
  shapeIs(op, 'vCache', vCache, kCache.shape);
  dtypeIn(op, 'blockTable', blockTable, ['int32']);
  rankIs(op, 'blockTable', blockTable, 2);
  shapeIs(op, 'blockTable', blockTable, [batch, -1]);
  const maxBlocks = blockTable.shape[1];
  dtypeIn(op, 'seqLens', seqLens, ['int32']);
  shapeIs(op, 'seqLens', seqLens, [batch]);
  if (numBlocks === 0 || blockSize === 0 || kvHeads === 0 || headDim === 0) fail(op, `kCache ${kCache.describe()} is empty`);
  if (maxBlocks === 0) fail(op, `blockTable ${blockTable.describe()} has no columns`);
  if (queries === 0 || heads === 0) fail(op, `q ${q.describe()} is empty`);
  if (heads % kvHeads !== 0) fail(op, `q has ${heads} heads, not a multiple of the caches' ${kvHeads} kv heads (${q.describe()}, ${kCache.describe()})`);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) fail(op, `scale must be finite, got ${scale}`);
  const window = opts.window ?? 0;
  if (!Number.isInteger(window) || window < 0) fail(op, `window must be a non-negative integer (0: none), got ${window}`);
  const numSplits = opts.numSplits ?? pagedAttentionSplits(maxBlocks * blockSize, batch, kvHeads);
  if (!Number.isInteger(numSplits) || numSplits < 1 || numSplits > 1024) fail(op, `numSplits must be an integer in [1, 1024], got ${numSplits}`);
  if (opts.out) {
    if (opts.out.dtype !== q.dtype || opts.out.numel !== q.numel || opts.out.rank !== q.rank || !opts.out.shape.every((d, i) => d === q.shape[i])) {
      fail(op, `out is ${opts.out.describe()}; expected ${q.dtype}${shapeString(q.shape)}`);
    }
  }
  const out = opts.out ?? Tensor.empty(q.shape, q.dtype, device);
  // Only CUDA reads the workspace; it is freed right after the launch (stream-ordered reuse).
  const wsElems = device !== 'cpu' && numSplits > 1 ? batch * queries * heads * numSplits * (headDim + 2) : 0;
  const workspace = wsElems > 0 ? Tensor.empty([wsElems], 'float32', device) : undefined;
  try {
    native().pagedAttention(
      q.storage, kCache.storage, vCache.storage, blockTable.storage, seqLens.storage, out.storage, workspace?.storage ?? null,
      q.dtypeCode, batch, queries, heads, kvHeads, headDim, numBlocks, blockSize, maxBlocks, scale, window, numSplits,
    );
  } catch (e) {
    if (!opts.out) out.dispose();
    throw e;
  } finally {
    workspace?.dispose();
  }
  return out;
}
