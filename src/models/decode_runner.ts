/**
 * Fixed-shape decode steps for a batch of B sequences (one new token each), replayable as a CUDA
 * graph. Every input lives in one persistent int32 device buffer,
 *
 *   [ids B | positions B | slot mapping B | lengths B | block table B x width]
 *
 * written with a single host-to-device copy per step, and the float32 [B, V] logits go into a
 * persistent tensor. On CUDA (with `graph`) the first step runs eagerly (which also warms the caching
 * allocator) and is then captured; later steps only upload the inputs and replay. Rows without a
 * sequence (null) are padding: token 0 at position 0, slot -1 (nothing is written to the cache),
 * length 0 (attention gives zeros), so a batch keeps its shape as its sequences finish.
 */
import type { CausalLM } from './causal_lm.js';
import type { KvSequence, PagedKvCache } from './kv_cache.js';
import { CudaGraph } from '../runtime/cuda.js';
import { tidy } from '../runtime/scope.js';
import { Tensor } from '../runtime/tensor.js';

export interface DecodeRunnerOptions {
  /** Capture and replay a CUDA graph (CUDA only; default true there unless AERIE_CUDA_GRAPHS=0). */
  graph?: boolean;
}

export class DecodeRunner {
  readonly useGraph: boolean;
  /** float32 [batch, V]: the last step's logits (overwritten by the next step). */
  readonly logits: Tensor;
  private readonly buffer: Tensor;
  private readonly views: { ids: Tensor; positions: Tensor; slots: Tensor; seqLens: Tensor; blockTable: Tensor };
  private graph: CudaGraph | null = null;
  private disposed = false;

  /** `width`: block-table columns, enough for the longest sequence this runner will see. */
  constructor(
    readonly model: CausalLM,
    readonly cache: PagedKvCache,
    readonly batch: number,
    readonly width: number,
    options: DecodeRunnerOptions = {},
  ) {
    if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`DecodeRunner: batch must be a positive integer, got ${batch}`);
    if (!Number.isInteger(width) || width <= 0) throw new RangeError(`DecodeRunner: width must be a positive integer, got ${width}`);
    this.useGraph = model.device !== 'cpu' && (options.graph ?? process.env.AERIE_CUDA_GRAPHS !== '0');
    const B = batch;
    this.buffer = Tensor.zeros([4 * B + B * width], 'int32', model.device).keep();
    this.logits = Tensor.empty([B, model.vocabSize], 'float32', model.device).keep();
    const table = this.buffer.rows(4 * B, 4 * B + B * width);
    this.views = {
      ids: this.buffer.rows(0, B).keep(),
      positions: this.buffer.rows(B, 2 * B).keep(),
      slots: this.buffer.rows(2 * B, 3 * B).keep(),
      seqLens: this.buffer.rows(3 * B, 4 * B).keep(),
      blockTable: table.reshape([B, width]).keep(),
    };
    table.dispose();
  }

  /**
   * Appends tokens[b] to seqs[b] (null: a padding row, its token ignored) and returns the logits
   * tensor (valid until the next step).
   */
  step(seqs: readonly (KvSequence | null)[], tokens: readonly number[]): Tensor {
    if (this.disposed) throw new Error('DecodeRunner.step: disposed');
    const B = this.batch;
    if (seqs.length !== B || tokens.length !== B) throw new RangeError(`DecodeRunner.step: expected ${B} sequences and tokens, got ${seqs.length} and ${tokens.length}`);
    // Every row is checked before any block is reserved: a bad input leaves the cache as it was.
    for (let b = 0; b < B; b++) {
      const s = seqs[b];
      if (!s) continue;
      const tok = tokens[b];
      if (!Number.isInteger(tok) || tok < 0 || tok >= this.model.vocabSize) throw new RangeError(`DecodeRunner.step: token ${tok} of row ${b} is outside the vocabulary`);
      if (s.released) throw new Error(`DecodeRunner.step: sequence ${s.id} of row ${b} was released`);
      const need = this.cache.blocksFor(s.length + 1);
      if (need > this.width) throw new Error(`DecodeRunner.step: sequence ${s.id} needs ${need} blocks, more than the runner's width ${this.width}`);
    }
    const host = new Int32Array(4 * B + B * this.width);
    for (let b = 0; b < B; b++) {
      const s = seqs[b];
      if (!s) {
        host[2 * B + b] = -1;
        continue;
      }
      const tok = tokens[b];
      this.cache.reserve(s, s.length + 1);
      host[b] = tok;
      host[B + b] = s.length;
      host[2 * B + b] = this.cache.slot(s, s.length);
      host[3 * B + b] = s.length + 1;
      host.set(s.blocks, 4 * B + b * this.width);
    }
    this.buffer.storage.write(host);
    if (!this.useGraph) {
      this.run();
    } else if (!this.graph) {
      this.run();
      this.graph = CudaGraph.capture(this.model.device, () => this.run());
    } else {
      this.graph.replay();
    }
    for (const s of seqs) if (s) s.length += 1;
    return this.logits;
  }

  /**
   * Runs the last step again on the same inputs (it rewrites the same cache slots with the same
   * values): for timing the step's GPU work alone. Replays the graph when there is one.
   */
  repeatLast(): void {
    if (this.disposed) throw new Error('DecodeRunner.repeatLast: disposed');
    if (this.graph) this.graph.replay();
    else this.run();
  }

  private run(): void {
    const v = this.views;
    tidy(() => {
      this.model.forward({
        ids: v.ids,
        positions: v.positions,
        attention: { kind: 'paged', blockTable: v.blockTable, seqLens: v.seqLens, queries: 1 },
        kv: { cache: this.cache, slotMapping: v.slots },
        logitRows: 'all',
        logitsOut: this.logits,
      });
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.graph?.destroy();
    for (const t of [...Object.values(this.views), this.buffer, this.logits]) t.dispose();
  }
}
