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
 *
 * For a host that runs one step behind (GreedyDecodePipeline), a step can also take its ids from the
 * device (`'device'`: whatever the ids view holds, e.g. the argmax a chained runner wrote there) and
 * write the argmax of its own logits into another runner's ids (`argmaxInto`); `stage` and `launch`
 * are the host and device halves of `step`, so the upload can go through another stream.
 */
import type { CausalLM } from './causal_lm.js';
import type { KvSequence, PagedKvCache } from './kv_cache.js';
import { CudaGraph } from '../runtime/cuda.js';
import { argmax } from '../runtime/ops/sampling.js';
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
  private argmaxTarget: Tensor | null = null;
  private staged: (KvSequence | null)[] | null = null;
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

  /** int32 [batch]: the ids the next step reads (a view of the input buffer). */
  get ids(): Tensor {
    return this.views.ids;
  }

  /**
   * Makes every step also write the argmax of its logits (lowest id on ties) into `target`, int32
   * [batch] on this device: the ids of a chained runner's next step. Only before the first step
   * (it becomes part of the captured graph).
   */
  argmaxInto(target: Tensor): void {
    if (this.disposed) throw new Error('DecodeRunner.argmaxInto: disposed');
    if (this.graph || this.argmaxTarget) throw new Error('DecodeRunner.argmaxInto: only once, before the first step');
    if (target.dtype !== 'int32' || target.rank !== 1 || target.shape[0] !== this.batch || target.device !== this.model.device) {
      throw new TypeError(`DecodeRunner.argmaxInto: target must be int32 [${this.batch}] on ${this.model.device}, got ${target.describe()}`);
    }
    this.argmaxTarget = target;
  }

  /**
   * Appends tokens[b] to seqs[b] (null: a padding row, its token ignored) and returns the logits
   * tensor (valid until the next step). tokens 'device': the ids already on the device (see ids).
   */
  step(seqs: readonly (KvSequence | null)[], tokens: readonly number[] | 'device'): Tensor {
    this.stage(seqs, tokens);
    this.launch();
    return this.logits;
  }

  /**
   * The host half of step: checks the rows, reserves cache blocks and uploads the inputs on the
   * current stream (ids too unless tokens is 'device'). launch() runs the step.
   */
  stage(seqs: readonly (KvSequence | null)[], tokens: readonly number[] | 'device'): void {
    if (this.disposed) throw new Error('DecodeRunner.step: disposed');
    if (this.staged) throw new Error('DecodeRunner.stage: the staged step was not launched');
    const B = this.batch;
    const fromDevice = tokens === 'device';
    if (seqs.length !== B || (!fromDevice && tokens.length !== B)) {
      throw new RangeError(`DecodeRunner.step: expected ${B} sequences and tokens, got ${seqs.length} and ${fromDevice ? 'device ids' : tokens.length}`);
    }
    // Every row is checked before any block is reserved: a bad input leaves the cache as it was.
    for (let b = 0; b < B; b++) {
      const s = seqs[b];
      if (!s) continue;
      if (!fromDevice) {
        const tok = tokens[b];
        if (!Number.isInteger(tok) || tok < 0 || tok >= this.model.vocabSize) throw new RangeError(`DecodeRunner.step: token ${tok} of row ${b} is outside the vocabulary`);
      }
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
      this.cache.reserve(s, s.length + 1);
      if (!fromDevice) host[b] = tokens[b];
      host[B + b] = s.length;
      host[2 * B + b] = this.cache.slot(s, s.length);
      host[3 * B + b] = s.length + 1;
      host.set(s.blocks, 4 * B + b * this.width);
    }
    if (fromDevice) this.buffer.storage.write(host.subarray(B), 4 * B);
    else this.buffer.storage.write(host);
    this.staged = [...seqs];
  }

  /** The device half of step: runs the staged step (the first one eagerly, then captured) or replays it. */
  launch(): void {
    if (this.disposed) throw new Error('DecodeRunner.launch: disposed');
    const seqs = this.staged;
    if (!seqs) throw new Error('DecodeRunner.launch: nothing staged');
    this.staged = null;
    if (!this.useGraph) {
      this.run();
    } else if (!this.graph) {
      this.run();
      this.graph = CudaGraph.capture(this.model.device, () => this.run());
    } else {
      this.graph.replay();
    }
    for (const s of seqs) if (s) s.length += 1;
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
      if (this.argmaxTarget) argmax(this.logits, { out: this.argmaxTarget });
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.graph?.destroy();
    for (const t of [...Object.values(this.views), this.buffer, this.logits]) t.dispose();
  }
}
