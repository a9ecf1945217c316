/**
 * One TCP connection of the TCP backend: frames in (to a replaceable handler, in arrival order),
 * frames out, and a single close notification carrying the reason.
 */
import type { Socket } from 'node:net';
import { type Frame, type FrameHeader, FrameDecoder, writeFrame } from './framing.js';

export class Link {
  /** Receives each frame; may be swapped from inside a call (later frames go to the new one). */
  onFrame: (frame: Frame) => void;
  /** Called once when the connection ends, for whatever reason. */
  onClose: (reason: string) => void;
  private decoder = new FrameDecoder();
  private lastError: string | null = null;
  private closeReason: string | null = null;
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    this.onFrame = () => {};
    this.onClose = () => {};
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.destroy(`protocol error: ${(e as Error).message}`);
        return;
      }
      for (const f of frames) {
        if (this.isClosed) break;
        this.onFrame(f);
      }
    });
    socket.on('error', (err) => {
      this.lastError = err.message;
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        if (this.closeReason === null) this.closeReason = this.lastError ?? 'connection closed by the peer';
        resolve();
        this.onClose(this.closeReason);
      });
    });
  }

  get isClosed(): boolean {
    return this.closeReason !== null || this.socket.destroyed;
  }

  send(header: FrameHeader, payload?: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error(`connection already closed (${this.closeReason ?? 'destroyed'})`));
    return writeFrame(this.socket, header, payload);
  }

  destroy(reason: string): void {
    if (this.closeReason === null) this.closeReason = reason;
    this.socket.destroy();
  }

  /** Half-closes and waits for the peer to close too; destroys the socket after `timeoutMs`. */
  async end(timeoutMs: number): Promise<void> {
    if (this.socket.destroyed) return;
    if (this.closeReason === null) this.closeReason = 'closed by this rank';
    this.socket.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.socket.destroy();
  }
}
