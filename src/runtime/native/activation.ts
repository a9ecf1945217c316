/** Native surface of the activation kernel family (native/kernels/bind_activation.cc). */
import type { NativeStorage } from './storage.js';

export interface ActivationNative {
  /**
   * SwiGLU: out (rows, inter) = silu(gate) * up, gate and up (rows, inter); or, with up = null,
   * gate is the fused (rows, 2*inter) tensor whose first half is gate and second half up, or with
   * pairs = true, whose columns alternate gate 0, up 0, gate 1, up 1, ... (forward only).
   */
  swiglu(gate: NativeStorage, up: NativeStorage | null, out: NativeStorage, dtype: number, rows: number, inter: number, pairs?: boolean): void;
  /**
   * Backward of swiglu given dout (rows, inter): dgate and dup (rows, inter), or, with dup = null,
   * dgate is the fused (rows, 2*inter) gradient [dgate | dup]. up = null: fused input as in swiglu.
   */
  swigluBackward(
    dout: NativeStorage, gate: NativeStorage, up: NativeStorage | null, dgate: NativeStorage, dup: NativeStorage | null,
    dtype: number, rows: number, inter: number,
  ): void;
}
