/**
 * Length-prefixed frames for the TCP backend. A frame is a 16-byte prefix (magic "AEC1", header
 * length u32, payload length u48, 2 reserved bytes, all little-endian), a UTF-8 JSON header, then
 * the payload bytes. The magic and a cap on the header size make a stray connection fail fast
 * instead of being read as a huge frame.
 */
import type { Socket } from 'node:net';

const MAGIC = 0x31434541; // "AEC1" read as a little-endian u32
const PREFIX_BYTES = 16;
const MAX_HEADER_BYTES = 1 << 20;

/** Control data of a frame; `t` is the frame type. */
export interface FrameHeader {
  t: string;
  [key: string]: unknown;
}

export interface Frame {
  header: FrameHeader;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Writes one frame; resolves when the bytes are handed to the OS. */
export function writeFrame(socket: Socket, header: FrameHeader, payload: Uint8Array = EMPTY): Promise<void> {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeUInt32LE(MAGIC, 0);
  prefix.writeUInt32LE(json.length, 4);
  prefix.writeUIntLE(payload.byteLength, 8, 6);
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    socket.cork();
    socket.write(prefix);
    if (payload.byteLength === 0) {
      socket.write(json, done);
    } else {
      socket.write(json);
      socket.write(payload, done);
    }
    socket.uncork();
  });
}

/** Reassembles frames from the chunks a socket delivers. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need: { header: number; payload: number } | null = null;

  /** Adds a chunk; returns the frames it completes. Throws on bytes that are not a frame. */
  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (!this.need) {
        if (this.buffered < PREFIX_BYTES) break;
        const prefix = this.take(PREFIX_BYTES);
        if (prefix.readUInt32LE(0) !== MAGIC) throw new Error('not an Aerie collectives frame (bad magic)');
        const header = prefix.readUInt32LE(4);
        if (header > MAX_HEADER_BYTES) throw new Error(`frame header of ${header} bytes exceeds ${MAX_HEADER_BYTES}`);
        this.need = { header, payload: prefix.readUIntLE(8, 6) };
      }
      if (this.buffered < this.need.header + this.need.payload) break;
      const header = JSON.parse(this.take(this.need.header).toString('utf8')) as FrameHeader;
      if (typeof header !== 'object' || header === null || typeof header.t !== 'string') throw new Error('malformed frame header');
      const payload = this.need.payload > 0 ? this.take(this.need.payload) : EMPTY;
      this.need = null;
      frames.push({ header, payload });
    }
    return frames;
  }

  /** Removes the first n buffered bytes (copying only when they span chunks). */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
