/**
 * Memory scopes. Every tensor created inside `tidy(fn)` is disposed when fn returns, except the
 * tensors it returns (also inside arrays and plain objects) and those marked with `keep()`. A
 * training or decode step wrapped in tidy therefore leaks nothing. Outside any scope, tensors live
 * until `dispose()`.
 */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];

/** Called by every tensor constructor. */
export function track(t: Disposable): void {
  const top = stack[stack.length - 1];
  if (top) top.add(t);
}

/** Removes `t` from every open scope: it outlives them (until disposed explicitly). */
export function keep<T extends Disposable>(t: T): T {
  for (const scope of stack) scope.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as object)) collect(v, out, seen);
  }
}

function close(scope: Set<Disposable>, result: unknown): void {
  const survivors = new Set<Disposable>();
  collect(result, survivors);
  stack.pop();
  const parent = stack[stack.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) {
      if (parent) parent.add(t);
    } else if (!t.isDisposed) {
      t.dispose();
    }
  }
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    close(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    close(scope, undefined);
    throw new TypeError('tidy: fn returned a Promise; use tidyAsync for async work');
  }
  close(scope, result);
  return result;
}

/** tidy for async functions. Scopes nest by call order: do not interleave two tidyAsync calls. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    close(scope, undefined);
    throw e;
  }
  close(scope, result);
  return result;
}

/** Number of tensors tracked by open scopes (for tests). */
export function openScopeCount(): number {
  return stack.length;
}
