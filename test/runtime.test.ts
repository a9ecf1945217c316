import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy, keep } from '../src/runtime/scope.js';
import { native } from '../src/runtime/binding.js';
import { floatToBf16Bits, bf16BitsToFloat, floatToF16Bits, f16BitsToFloat } from '../src/runtime/dtype.js';

describe('Tensor on the CPU', () => {
  it('round-trips every dtype', () => {
    const vals = [1, -2, 3.5, 0, 65504, -0.25];
    expect(Array.from(Tensor.fromArray(vals, [2, 3]).toFloat32Array())).toEqual(vals);
    expect(Array.from(Tensor.fromArray(vals, [6], { dtype: 'bfloat16' }).toFloat32Array())).toEqual([1, -2, 3.5, 0, 65536, -0.25]);
    expect(Array.from(Tensor.fromArray(vals, [6], { dtype: 'float16' }).toFloat32Array())).toEqual(vals);
    expect(Array.from(Tensor.fromArray([1, -2, 7], [3], { dtype: 'int32' }).toFloat32Array())).toEqual([1, -2, 7]);
    expect(Tensor.fromArray([1, -2, 2 ** 40], [3], { dtype: 'int64' }).toNumbers()).toEqual([1, -2, 2 ** 40]);
    expect(Array.from(Tensor.fromArray([1, 0, 1], [3], { dtype: 'bool' }).toFloat32Array())).toEqual([1, 0, 1]);
  });

  it('toArray gives the typed array of the dtype', () => {
    expect(Tensor.fromArray([1, 2], [2], { dtype: 'int32' }).toArray()).toBeInstanceOf(Int32Array);
    expect(Tensor.fromArray([1, 2], [2], { dtype: 'int64' }).toArray()).toBeInstanceOf(BigInt64Array);
    expect(Tensor.fromArray([1, 0], [2], { dtype: 'bool' }).toArray()).toBeInstanceOf(Uint8Array);
    expect(Tensor.fromArray([1, 2], [2], { dtype: 'bfloat16' }).toArray()).toBeInstanceOf(Float32Array);
    expect(Array.from(Tensor.fromArray([3, -4], [2], { dtype: 'int64' }).toFloat32Array())).toEqual([3, -4]);
  });

  it('rounds bf16 to nearest even like the native code', () => {
    // 1 + 2^-8 is halfway between two bf16 values: ties go to the even mantissa (1.0).
    const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -3.0000001]);
    expect(Array.from(bf16BitsToFloat(floatToBf16Bits(x)))).toEqual([1, 1 + 2 ** -6, -3]);
    const h = new Float32Array([1 / 3, 6e-8, 70000, -0]);
    const back = f16BitsToFloat(floatToF16Bits(h));
    expect(Math.abs(back[0] - 1 / 3)).toBeLessThan(2 ** -11);
    expect(back[1]).toBeCloseTo(5.96e-8, 9); // subnormal
    expect(back[2]).toBe(Infinity);
  });

  it('views share storage and rows select the first dimension', () => {
    const t = Tensor.fromArray([0, 1, 2, 3, 4, 5], [3, 2]);
    const r = t.rows(1, 3);
    expect(r.shape).toEqual([2, 2]);
    expect(Array.from(r.toFloat32Array())).toEqual([2, 3, 4, 5]);
    const flat = t.reshape([-1]);
    expect(flat.shape).toEqual([6]);
    r.storage.write(new Float32Array([9]), 0);
    expect(t.toFloat32Array()[2]).toBe(9);
    t.dispose();
    // the views keep the bytes alive after the base is disposed
    expect(flat.toFloat32Array()[2]).toBe(9);
  });

  it('copies between overlapping views of one tensor (memmove semantics)', () => {
    const t = Tensor.fromArray([0, 1, 2, 3, 4, 5], [3, 2]);
    t.rows(0, 2).copy_(t.rows(1, 3));
    expect(Array.from(t.toFloat32Array())).toEqual([2, 3, 4, 5, 4, 5]);
    t.rows(1, 3).copy_(t.rows(0, 2));
    expect(Array.from(t.toFloat32Array())).toEqual([2, 3, 2, 3, 4, 5]);
  });

  it('rejects sizes JavaScript numbers cannot hold exactly', () => {
    expect(() => native().allocate(2 ** 60, -1)).toThrow(/allocate: argument bytes is beyond 2\^53/);
    expect(() => native().allocate(1.5, -1)).toThrow(/must be an integer/);
  });

  it('names the op and shapes when misused', () => {
    const t = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
    expect(() => t.reshape([3])).toThrow(/reshape: cannot reshape float32\[2, 2\] on cpu to \[3\]/);
    expect(() => t.rows(1, 5)).toThrow(/rows: \[1, 5\) is outside/);
    expect(() => Tensor.fromArray([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    t.dispose();
    expect(() => t.toFloat32Array()).toThrow(/already disposed/);
  });

  it('tidy disposes what it does not return', () => {
    let inner!: Tensor;
    let kept!: Tensor;
    const out = tidy(() => {
      inner = Tensor.zeros([4]);
      kept = keep(Tensor.zeros([2]));
      return { result: Tensor.zeros([3]) };
    });
    expect(inner.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(out.result.isDisposed).toBe(false);
    expect(() => tidy(() => { Tensor.zeros([1]); throw new Error('boom'); })).toThrow('boom');
  });

  it('a CUDA op without a GPU fails with a clear error', () => {
    const b = native();
    if (b.cudaDeviceCount() > 0) return; // this check is for CPU-only machines
    const expected = b.builtWithCuda
      ? /allocate: cuda:0 does not exist \(0 CUDA device\(s\) present/
      : /allocate: this addon was built without CUDA .*npm run build:native/;
    expect(() => Tensor.empty([4], 'float32', 'cuda:0')).toThrow(expected);
  });

  it('a missing cuBLASLt or NCCL is an error naming the library, dlerror and the paths searched', () => {
    const b = native();
    for (const [lib, file] of [['cublasLt', 'libcublasLt.so.13'], ['nccl', 'libnccl.so.2']] as const) {
      let message = '';
      try {
        b.loadCudaLibrary(lib);
        continue; // present on this machine (the GPU machine): nothing to check here
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toContain(`cannot load ${file}`);
      expect(message).toContain('/usr/local/cuda/lib64/');
      expect(message).toMatch(/cannot open shared object file|No such file/);
      expect(message).toContain('AERIE_CUDA_LIB_PATH');
    }
  });

  it('AERIE_CUDA_LIB_PATH is searched first', () => {
    const b = native();
    const prev = process.env.AERIE_CUDA_LIB_PATH;
    process.env.AERIE_CUDA_LIB_PATH = '/nonexistent/aerie-libs';
    let message = '';
    try {
      b.loadCudaLibrary('nccl');
    } catch (e) {
      message = (e as Error).message;
    } finally {
      if (prev === undefined) delete process.env.AERIE_CUDA_LIB_PATH;
      else process.env.AERIE_CUDA_LIB_PATH = prev;
    }
    if (message === '') return; // NCCL is installed here (the GPU machine)
    const override = message.indexOf('/nonexistent/aerie-libs/libnccl.so.2');
    expect(override).toBeGreaterThan(0);
    expect(override).toBeLessThan(message.indexOf('/usr/local/cuda/lib64/libnccl.so.2'));
  });
});
