/**
 * The paged KV cache (vLLM layout): per layer, K and V caches of [numBlocks, blockSize, kvHeads,
 * headDim] in the compute dtype. A sequence owns a list of blocks; its token i lives in block
 * blocks[i / blockSize] at offset i % blockSize, i.e. at slot blocks[i / blockSize] * blockSize +
 * i % blockSize. The caches of all layers are two allocations (K and V), each [numLayers *
 * numBlocks, blockSize, kvHeads, headDim], so their addresses never change (CUDA graphs replay
 * against them); layer l's cache is the view of rows [l * numBlocks, (l + 1) * numBlocks).
 *
 * Everything here except the cache tensors is host bookkeeping: the block allocator (a free list),
 * each sequence's block list and length, and the int32 arrays (slot mapping, block table, lengths)
 * that a forward step uploads.
 */
import { DTYPE_BYTES, type DType } from '../runtime/dtype.js';
import type { Device } from '../runtime/device.js';
import { Tensor } from '../runtime/tensor.js';

/** A free list of block ids 0 .. numBlocks-1; allocation takes the lowest ids first. */
export class BlockAllocator {
  private readonly free: number[];
  private readonly used: Uint8Array;

  constructor(readonly numBlocks: number) {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) throw new RangeError(`BlockAllocator: numBlocks must be a positive integer, got ${numBlocks}`);
    // A stack with the lowest id on top.
    this.free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.used = new Uint8Array(numBlocks);
  }

  get numFree(): number {
    return this.free.length;
  }

  /** n blocks, or an error naming how many are free (nothing is taken then). */
  allocate(n: number): number[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`BlockAllocator.allocate: n must be a non-negative integer, got ${n}`);
    if (n > this.free.length) {
      throw new Error(`KV cache is full: ${n} more blocks needed, ${this.free.length} of ${this.numBlocks} free (make the cache larger)`);
    }
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.free.pop()!;
      this.used[b] = 1;
      out.push(b);
    }
    return out;
  }

  release(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (!(b >= 0 && b < this.numBlocks) || !this.used[b]) throw new Error(`BlockAllocator.release: block ${b} is not allocated`);
      this.used[b] = 0;
      this.free.push(b);
    }
  }
}

/** One sequence's place in the cache: its blocks and the number of tokens written. */
export class KvSequence {
  readonly blocks: number[] = [];
  /** Tokens whose K/V are in the cache (positions 0 .. length-1). */
  length = 0;
  released = false;
  constructor(readonly id: number) {}
}

export interface KvCacheOptions {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  device: Device;
  numBlocks: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
}

export class PagedKvCache {
  readonly numLayers: number;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dtype: DType;
  readonly device: Device;
  readonly allocator: BlockAllocator;
  /** Per layer, [numBlocks, blockSize, kvHeads, headDim] views of the two allocations. */
  readonly k: Tensor[];
  readonly v: Tensor[];
  private readonly kAll: Tensor;
  private readonly vAll: Tensor;
  private nextId = 0;

  constructor(o: KvCacheOptions) {
    this.numLayers = o.numLayers;
    this.numBlocks = o.numBlocks;
    this.blockSize = o.blockSize ?? 16;
    this.kvHeads = o.kvHeads;
    this.headDim = o.headDim;
    this.dtype = o.dtype;
    this.device = o.device;
    for (const [name, v] of Object.entries({ numLayers: o.numLayers, numBlocks: o.numBlocks, blockSize: this.blockSize, kvHeads: o.kvHeads, headDim: o.headDim })) {
      if (!Number.isInteger(v) || v <= 0) throw new RangeError(`PagedKvCache: ${name} must be a positive integer, got ${v}`);
    }
    this.allocator = new BlockAllocator(o.numBlocks);
    const shape = [o.numLayers * o.numBlocks, this.blockSize, o.kvHeads, o.headDim];
    this.kAll = Tensor.zeros(shape, o.dtype, o.device).keep();
    try {
      this.vAll = Tensor.zeros(shape, o.dtype, o.device).keep();
    } catch (e) {
      this.kAll.dispose();
      throw e;
    }
    this.k = [];
    this.v = [];
    for (let l = 0; l < o.numLayers; l++) {
      this.k.push(this.kAll.rows(l * o.numBlocks, (l + 1) * o.numBlocks).keep());
      this.v.push(this.vAll.rows(l * o.numBlocks, (l + 1) * o.numBlocks).keep());
    }
  }

  /** Bytes of K and V a token takes over all layers. */
  get bytesPerToken(): number {
    return kvBytesPerToken(this.numLayers, this.kvHeads, this.headDim, this.dtype);
  }

  /** Token capacity of the whole cache. */
  get capacity(): number {
    return this.numBlocks * this.blockSize;
  }

  newSequence(): KvSequence {
    return new KvSequence(this.nextId++);
  }

  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Grows seq's block list to hold `tokens` tokens. */
  reserve(seq: KvSequence, tokens: number): void {
    if (seq.released) throw new Error(`KV sequence ${seq.id} was released`);
    const need = this.blocksFor(tokens) - seq.blocks.length;
    if (need > 0) seq.blocks.push(...this.allocator.allocate(need));
  }

  /** Returns seq's blocks to the allocator. */
  release(seq: KvSequence): void {
    if (seq.released) return;
    this.allocator.release(seq.blocks);
    seq.blocks.length = 0;
    seq.length = 0;
    seq.released = true;
  }

  /** The slot of seq's token at `position` (its block must be reserved). */
  slot(seq: KvSequence, position: number): number {
    const b = seq.blocks[Math.floor(position / this.blockSize)];
    if (b === undefined) throw new Error(`KV sequence ${seq.id}: position ${position} is beyond its ${seq.blocks.length} reserved blocks`);
    return b * this.blockSize + (position % this.blockSize);
  }

  /** Writes the slots of positions [start, start + count) of seq into out at `at`. */
  slots(seq: KvSequence, start: number, count: number, out: Int32Array, at = 0): void {
    for (let i = 0; i < count; i++) out[at + i] = this.slot(seq, start + i);
  }

  /**
   * The block table of `seqs` as int32 [seqs.length, width] (row-major), unused entries 0. Rows of
   * null are padding (all zeros). `width` defaults to the longest block list.
   */
  blockTable(seqs: readonly (KvSequence | null)[], width?: number): { data: Int32Array; width: number } {
    const w = width ?? Math.max(1, ...seqs.map((s) => s?.blocks.length ?? 0));
    const data = new Int32Array(seqs.length * w);
    seqs.forEach((s, r) => {
      if (!s) return;
      if (s.blocks.length > w) throw new Error(`KV sequence ${s.id} has ${s.blocks.length} blocks, more than the block table's width ${w}`);
      data.set(s.blocks, r * w);
    });
    return { data, width: w };
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v, this.kAll, this.vAll]) t.dispose();
  }
}

/** 2 (K and V) * layers * kvHeads * headDim * dtype bytes. */
export function kvBytesPerToken(numLayers: number, kvHeads: number, headDim: number, dtype: DType): number {
  return 2 * numLayers * kvHeads * headDim * DTYPE_BYTES[dtype];
}
