/**
 * Where the TCP backend's incoming frames wait for the operation that expects them: frames are
 * queued per key (FIFO), and an operation takes the next one or waits for it with a deadline.
 */
import type { Frame } from './framing.js';

interface Waiter {
  peer: number;
  resolve(frame: Frame): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class Mailbox {
  private frames = new Map<string, Frame[]>();
  private waiters = new Map<string, Waiter[]>();
  private failure: Error | null = null;

  deliver(key: string, frame: Frame): void {
    const waiting = this.waiters.get(key);
    const w = waiting?.shift();
    if (waiting && waiting.length === 0) this.waiters.delete(key);
    if (w) {
      clearTimeout(w.timer);
      w.resolve(frame);
      return;
    }
    const queue = this.frames.get(key);
    if (queue) queue.push(frame);
    else this.frames.set(key, [frame]);
  }

  /**
   * The next frame under `key`, which `peer` is to send. After `timeoutMs` the promise rejects with
   * onTimeout()'s error.
   */
  take(key: string, peer: number, timeoutMs: number, onTimeout: () => Error): Promise<Frame> {
    if (this.failure) return Promise.reject(this.failure);
    const queue = this.frames.get(key);
    const ready = queue?.shift();
    if (queue && queue.length === 0) this.frames.delete(key);
    if (ready) return Promise.resolve(ready);
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        peer,
        resolve,
        reject,
        timer: setTimeout(() => {
          const list = this.waiters.get(key);
          const i = list ? list.indexOf(waiter) : -1;
          if (list && i >= 0) list.splice(i, 1);
          if (list && list.length === 0) this.waiters.delete(key);
          reject(onTimeout());
        }, timeoutMs),
      };
      const list = this.waiters.get(key);
      if (list) list.push(waiter);
      else this.waiters.set(key, [waiter]);
    });
  }

  /** Whether an operation is waiting on a frame from `peer`. */
  waitsOn(peer: number): boolean {
    for (const list of this.waiters.values()) if (list.some((w) => w.peer === peer)) return true;
    return false;
  }

  /** Rejects every waiting and future take with `error`. */
  failAll(error: Error): void {
    if (!this.failure) this.failure = error;
    for (const list of this.waiters.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        w.reject(error);
      }
    }
    this.waiters.clear();
    this.frames.clear();
  }
}
