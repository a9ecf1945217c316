/**
 * Native surface of the sampling kernel family (native/kernels/bind_sampling.cc). logits are
 * (rows, vocab) of a float dtype; the per-row parameters are temperature (rows, float32), topK
 * (rows, int32), topP (rows, float32), seeds (rows, int64 holding uint64 bits) and steps (rows,
 * int64). See native/kernels/sampling.h for the exact algorithm.
 */
import type { NativeStorage } from './storage.js';

export interface SamplingNative {
  /** out (rows, int32) = argmax of each row, ties to the lowest index, NaN below -inf. */
  argmax(logits: NativeStorage, dtype: number, rows: number, vocab: number, out: NativeStorage): void;
  /** out (rows, int32) = one token per row drawn with Philox(seed, step) from the filtered distribution. */
  sample(
    logits: NativeStorage, dtype: number, rows: number, vocab: number, temperature: NativeStorage, topK: NativeStorage,
    topP: NativeStorage, seeds: NativeStorage, steps: NativeStorage, out: NativeStorage,
  ): void;
  /** probs (rows, vocab, float32) = the filtered distribution `sample` draws from. */
  samplingProbs(
    logits: NativeStorage, dtype: number, rows: number, vocab: number, temperature: NativeStorage, topK: NativeStorage,
    topP: NativeStorage, probs: NativeStorage,
  ): void;
  /** In place: logits (rows, vocab) = logits / temperature for surviving tokens, -inf elsewhere. */
  samplingFilter(
    logits: NativeStorage, dtype: number, rows: number, vocab: number, temperature: NativeStorage, topK: NativeStorage,
    topP: NativeStorage,
  ): void;
  /** Philox-4x32-10 of counter [c0..c3] under key [k0, k1] (32-bit words), as the kernels compute it. */
  philox4x32(counter: number[], key: number[]): number[];
}
