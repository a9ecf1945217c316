/**
 * Tensor: a contiguous, row-major array of one dtype on one device, over a reference-counted native
 * storage. Views (reshape, rows) share the storage; the bytes return to the allocator when the last
 * tensor over them is disposed.
 */
import { native, type NativeStorage } from './binding.js';
import {
  DTYPE_BYTES,
  DTYPE_CODE,
  type DType,
  type HostArray,
  bf16BitsToFloat,
  f16BitsToFloat,
  floatToBf16Bits,
  floatToF16Bits,
} from './dtype.js';
import { type Device, deviceFromIndex, deviceIndex } from './device.js';
import { track, keep as keepInScope } from './scope.js';

export type Shape = readonly number[];

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new TypeError(`${op}: invalid shape ${shapeString(shape)}`);
  }
}

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly device: Device;
  private _storage: NativeStorage | null;

  /** Wraps an existing storage; most code calls the static factories instead. */
  constructor(storage: NativeStorage, shape: Shape, dtype: DType) {
    checkShape(shape, 'Tensor');
    const need = numelOf(shape) * DTYPE_BYTES[dtype];
    if (storage.bytes < need) {
      throw new RangeError(`Tensor: storage of ${storage.bytes} bytes is too small for ${dtype}${shapeString(shape)} (${need} bytes)`);
    }
    this._storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = deviceFromIndex(storage.device);
    track(this);
  }

  static empty(shape: Shape, dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    checkShape(shape, 'empty');
    const bytes = numelOf(shape) * DTYPE_BYTES[dtype];
    return new Tensor(native().allocate(bytes, deviceIndex(device)), shape, dtype);
  }

  static zeros(shape: Shape, dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    const t = Tensor.empty(shape, dtype, device);
    t.storage.fill(0);
    return t;
  }

  /**
   * From host values. Numbers are converted to the dtype (bf16/f16 rounded to nearest even);
   * int64 accepts numbers or a BigInt64Array.
   */
  static fromArray(data: ArrayLike<number> | HostArray | BigInt64Array, shape: Shape, options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? (data instanceof Int32Array ? 'int32' : data instanceof BigInt64Array ? 'int64' : 'float32');
    const device = options.device ?? 'cpu';
    const n = numelOf(shape);
    if (data.length !== n) {
      throw new RangeError(`fromArray: ${data.length} values do not fill shape ${shapeString(shape)} (${n} elements)`);
    }
    const t = Tensor.empty(shape, dtype, device);
    try {
      t.storage.write(toHostBytes(data, dtype));
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  static scalar(value: number, options: TensorOptions = {}): Tensor {
    return Tensor.fromArray([value], [], options);
  }

  get storage(): NativeStorage {
    if (!this._storage) throw new Error(`tensor ${this.describe()} was already disposed`);
    return this._storage;
  }
  get isDisposed(): boolean {
    return this._storage === null;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }
  get dtypeCode(): number {
    return DTYPE_CODE[this.dtype];
  }
  get deviceIndex(): number {
    return deviceIndex(this.device);
  }
  /** e.g. "bfloat16[4, 128] on cuda:0" */
  describe(): string {
    return `${this.dtype}${shapeString(this.shape)} on ${this.device}`;
  }

  dispose(): void {
    if (this._storage) {
      this._storage.free();
      this._storage = null;
    }
  }

  /** Exempts this tensor from the enclosing tidy scopes. */
  keep(): this {
    return keepInScope(this);
  }

  /** A view with another shape of the same element count. -1 infers one dimension. */
  reshape(shape: Shape): Tensor {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new TypeError(`reshape: only one -1 allowed in ${shapeString(shape)}`);
    let full = [...shape];
    if (inferred === 1) {
      const k = numelOf(known);
      if (k === 0 || this.numel % k !== 0) throw new TypeError(`reshape: cannot reshape ${this.describe()} to ${shapeString(shape)}`);
      full = shape.map((d) => (d === -1 ? this.numel / k : d));
    }
    if (numelOf(full) !== this.numel) throw new TypeError(`reshape: cannot reshape ${this.describe()} to ${shapeString(shape)}`);
    return new Tensor(this.storage.view(0, this.byteLength), full, this.dtype);
  }

  /** A view of rows [start, end) along the first dimension. */
  rows(start: number, end: number): Tensor {
    if (this.rank === 0) throw new TypeError(`rows: ${this.describe()} has no first dimension`);
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= this.shape[0])) {
      throw new RangeError(`rows: [${start}, ${end}) is outside the first dimension of ${this.describe()}`);
    }
    const rowBytes = (this.numel / (this.shape[0] || 1)) * DTYPE_BYTES[this.dtype];
    return new Tensor(this.storage.view(start * rowBytes, (end - start) * rowBytes), [end - start, ...this.shape.slice(1)], this.dtype);
  }

  /** A copy on `device` (a new tensor even when the device is the same). */
  to(device: Device): Tensor {
    const out = Tensor.empty(this.shape, this.dtype, device);
    this.withExactStorage((src) => out.storage.copyFrom(src));
    return out;
  }

  clone(): Tensor {
    return this.to(this.device);
  }

  /** Copies `src` (same shape and dtype, any device) into this tensor. */
  copy_(src: Tensor): this {
    if (src.dtype !== this.dtype || src.numel !== this.numel) {
      throw new TypeError(`copy_: cannot copy ${src.describe()} into ${this.describe()}`);
    }
    this.withExactStorage((dst) => src.withExactStorage((from) => dst.copyFrom(from)));
    return this;
  }

  /**
   * Runs fn on a storage of exactly byteLength bytes: the tensor's own, or a temporary view that is
   * freed right after (a view left to the garbage collector would keep the bytes allocated).
   */
  private withExactStorage<T>(fn: (s: NativeStorage) => T): T {
    const s = this.storage;
    if (s.bytes === this.byteLength) return fn(s);
    const view = s.view(0, this.byteLength);
    try {
      return fn(view);
    } finally {
      view.free();
    }
  }

  /** Host copy of the values; bf16/f16 are widened to float32, bool to uint8. */
  toArray(): HostArray {
    const buf = this.storage.read(0, this.byteLength);
    switch (this.dtype) {
      case 'float32':
        return new Float32Array(buf);
      case 'bfloat16':
        return bf16BitsToFloat(new Uint16Array(buf));
      case 'float16':
        return f16BitsToFloat(new Uint16Array(buf));
      case 'int32':
        return new Int32Array(buf);
      case 'int64':
        return new BigInt64Array(buf);
      case 'uint8':
      case 'bool':
        return new Uint8Array(buf);
    }
  }

  /** Host copy of the values as float32 (exact for f32, bf16, f16 and integers below 2^24). */
  toFloat32Array(): Float32Array {
    const a = this.toArray();
    if (a instanceof Float32Array) return a;
    if (a instanceof BigInt64Array) return Float32Array.from(a, (v) => Number(v));
    return Float32Array.from(a);
  }

  /** Values as plain numbers (int64 converted; exact below 2^53). */
  toNumbers(): number[] {
    const a = this.toArray();
    return Array.from(a as ArrayLike<number | bigint>, (v) => Number(v));
  }

  item(): number {
    if (this.numel !== 1) throw new TypeError(`item: ${this.describe()} has ${this.numel} elements, not 1`);
    return this.toNumbers()[0];
  }
}

function toHostBytes(data: ArrayLike<number> | HostArray | BigInt64Array, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    case 'bfloat16':
      return floatToBf16Bits(data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
    case 'float16':
      return floatToF16Bits(data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
    case 'int32':
      return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    case 'int64':
      return data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
    case 'uint8':
    case 'bool':
      return data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>);
  }
}
