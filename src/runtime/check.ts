/**
 * Argument checks shared by every op: misuse is a JavaScript error naming the op and the shapes,
 * dtypes or devices involved, thrown before anything reaches native code.
 */
import type { DType } from './dtype.js';
import { isFloating } from './dtype.js';
import { type Shape, type Tensor, shapeString } from './tensor.js';

export function fail(op: string, message: string): never {
  throw new TypeError(`${op}: ${message}`);
}

/** All given tensors on one device; returns it. Absent (undefined) entries are skipped. */
export function sameDevice(op: string, tensors: Record<string, Tensor | undefined>): Tensor['device'] {
  let device: Tensor['device'] | undefined;
  let first = '';
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (t.isDisposed) fail(op, `${name} was already disposed`);
    if (device === undefined) {
      device = t.device;
      first = name;
    } else if (t.device !== device) {
      fail(op, `tensors on different devices: ${first} on ${device}, ${name} on ${t.device}`);
    }
  }
  return device ?? 'cpu';
}

export function dtypeIn(op: string, name: string, t: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) fail(op, `${name} is ${t.describe()}; expected dtype ${allowed.join(' or ')}`);
}

export function floating(op: string, name: string, t: Tensor): void {
  if (!isFloating(t.dtype)) fail(op, `${name} is ${t.describe()}; expected a floating dtype`);
}

export function sameDType(op: string, tensors: Record<string, Tensor | undefined>): DType {
  let dtype: DType | undefined;
  let first = '';
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (dtype === undefined) {
      dtype = t.dtype;
      first = name;
    } else if (t.dtype !== dtype) {
      fail(op, `dtypes differ: ${first} is ${dtype}, ${name} is ${t.dtype}`);
    }
  }
  return dtype ?? 'float32';
}

/** Checks t's shape; -1 in `expected` matches any size. */
export function shapeIs(op: string, name: string, t: Tensor, expected: Shape): void {
  const ok = t.shape.length === expected.length && expected.every((d, i) => d === -1 || d === t.shape[i]);
  if (!ok) fail(op, `${name} is ${t.describe()}; expected shape ${shapeString(expected)}`);
}

export function rankIs(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) fail(op, `${name} is ${t.describe()}; expected rank ${rank}`);
}

export function positiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) fail(op, `${name} must be a positive integer, got ${v}`);
}
