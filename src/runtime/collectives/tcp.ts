/**
 * TcpCommunicator: collectives over CPU tensors between processes, through node:net. For CPU-only
 * machines and multi-process tests; NCCL is the path for GPUs.
 *
 * Topology: a star around rank 0. Rank 0 listens on rendezvous.host:port (127.0.0.1 by default;
 * port 0 picks a free one, reported through onListening); every other rank connects to it, says
 * hello with its rank, the world size and the optional shared token, and the group forms once all
 * have joined. Each collective gathers every rank's contribution at rank 0, which checks that the
 * ranks agree (operation, dtype, size, root), computes each rank's result in rank order (so the
 * bytes are identical on every rank and every run) and sends it back. send/recv go through rank 0
 * too (relayed when neither end is rank 0); a send resolves once its bytes are handed to the OS, so
 * exchanges never deadlock.
 *
 * Failures: a wait longer than timeoutMs, or a peer that disconnects without closing, makes the
 * communicator unusable (like NCCL's); rank 0 tells the other ranks why, so every rank's error names
 * the rank at fault. A disagreement between ranks (say, different dtypes) fails only that operation,
 * with the same message on every rank.
 */
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Tensor } from '../tensor.js';
import type { Device } from '../device.js';
import {
  type Communicator,
  type ReduceOp,
  checkGroup,
  checkPeer,
  checkReduce,
  checkTensor,
  gatheredShape,
  scatteredShape,
} from './communicator.js';
import type { Frame, FrameHeader } from './framing.js';
import { Link } from './link.js';
import { Mailbox } from './mailbox.js';
import { reduceBytes } from './reduce.js';

export interface TcpRendezvous {
  /** Rank 0's address: it listens there, the others connect. Default 127.0.0.1. */
  host?: string;
  /** Rank 0's port; 0 lets rank 0 pick a free one (see onListening). */
  port: number;
  /** A shared secret every rank must present when it joins. */
  token?: string;
  /** Rank 0 only: called with the port it listens on, before the others join. */
  onListening?: (port: number) => void;
}

export interface TcpCommunicatorOptions {
  rank: number;
  worldSize: number;
  rendezvous: TcpRendezvous;
  /** Longest wait for a peer inside an operation (default 120 s). */
  timeoutMs?: number;
  /** Longest wait for the group to form (default 60 s). */
  connectTimeoutMs?: number;
}

const EMPTY = new Uint8Array(0);

function bytesOf(t: Tensor): Uint8Array {
  return t.byteLength === 0 ? EMPTY : new Uint8Array(t.storage.read(0, t.byteLength));
}

function writeInto(t: Tensor, bytes: Uint8Array): void {
  if (bytes.byteLength !== t.byteLength) {
    throw new Error(`internal: ${bytes.byteLength} bytes for ${t.describe()} (${t.byteLength} bytes)`);
  }
  if (bytes.byteLength > 0) t.storage.write(bytes, 0);
}

function digest(token: string | undefined): Buffer {
  return createHash('sha256').update(token ?? '').digest();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An error that fails one operation on every rank but leaves the communicator usable. */
class OperationError extends Error {}

export class TcpCommunicator implements Communicator {
  readonly backend = 'tcp' as const;
  readonly device: Device = 'cpu';
  readonly rank: number;
  readonly worldSize: number;
  /** The port rank 0 listens on (rank 0 only; 0 elsewhere). */
  port = 0;
  private readonly timeoutMs: number;
  private readonly mail = new Mailbox();
  private readonly links = new Map<number, Link>();
  private readonly left = new Set<number>();
  private server: Server | null = null;
  private seq = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private failure: Error | null = null;
  private onPeerChange: (() => void) | null = null;

  private constructor(rank: number, worldSize: number, timeoutMs: number) {
    this.rank = rank;
    this.worldSize = worldSize;
    this.timeoutMs = timeoutMs;
  }

  /** Forms the group: resolves once every rank has joined rank 0. */
  static async create(options: TcpCommunicatorOptions): Promise<TcpCommunicator> {
    const { rank, worldSize, rendezvous } = options;
    checkGroup('TcpCommunicator', rank, worldSize);
    if (!rendezvous || !Number.isInteger(rendezvous.port) || rendezvous.port < 0 || rendezvous.port > 65535) {
      throw new TypeError(`TcpCommunicator: rendezvous.port must be an integer in [0, 65535], got ${rendezvous?.port}`);
    }
    const timeoutMs = options.timeoutMs ?? 120_000;
    const connectTimeoutMs = options.connectTimeoutMs ?? 60_000;
    const comm = new TcpCommunicator(rank, worldSize, timeoutMs);
    if (worldSize > 1) {
      if (rank === 0) await comm.listen(rendezvous, connectTimeoutMs);
      else await comm.join(rendezvous, connectTimeoutMs);
    }
    return comm;
  }

  // ---- rendezvous ----

  private listen(rv: TcpRendezvous, connectTimeoutMs: number): Promise<void> {
    const host = rv.host ?? '127.0.0.1';
    const want = digest(rv.token);
    const server = createServer();
    this.server = server;
    const fresh = new Set<Link>(); // connected, not yet a member
    return new Promise<void>((resolve, reject) => {
      const giveUp = (message: string) => {
        clearTimeout(timer);
        for (const link of [...fresh, ...this.links.values()]) link.destroy('rendezvous failed');
        this.links.clear();
        server.close();
        this.server = null;
        reject(new Error(`tcp rendezvous: ${message}`));
      };
      const timer = setTimeout(() => {
        const missing: number[] = [];
        for (let r = 1; r < this.worldSize; r++) if (!this.links.has(r)) missing.push(r);
        giveUp(`rank 0 waited ${connectTimeoutMs} ms on ${host}:${this.port} but rank(s) ${missing.join(', ')} never joined`);
      }, connectTimeoutMs);

      server.on('error', (err) => giveUp(`rank 0 cannot listen on ${host}:${rv.port}: ${err.message}`));
      server.on('connection', (socket: Socket) => {
        const link = new Link(socket);
        fresh.add(link);
        link.onClose = () => fresh.delete(link);
        link.onFrame = (frame) => {
          const h = frame.header;
          const r = h.rank as number;
          let reason = '';
          if (h.t !== 'hello') reason = `expected hello, got '${h.t}'`;
          else if (h.worldSize !== this.worldSize) reason = `worldSize ${String(h.worldSize)} differs from rank 0's ${this.worldSize}`;
          else if (!Number.isInteger(r) || r < 1 || r >= this.worldSize) reason = `rank ${String(r)} is outside [1, ${this.worldSize})`;
          else if (this.links.has(r)) reason = `rank ${r} has already joined`;
          else if (!timingSafeEqual(digest(typeof h.token === 'string' ? h.token : undefined), want)) reason = 'token mismatch';
          if (reason) {
            link.onFrame = () => {};
            void link
              .send({ t: 'reject', reason })
              .catch(() => {})
              .finally(() => void link.end(1000));
            return;
          }
          fresh.delete(link);
          this.links.set(r, link);
          link.onFrame = (f) => this.onFrame(r, f);
          link.onClose = (why) => {
            if (this.server) {
              if (this.links.get(r) === link) this.links.delete(r); // still forming: the rank may reconnect
            }
            else this.onPeerClosed(r, why);
          };
          if (this.links.size === this.worldSize - 1) {
            clearTimeout(timer);
            server.close(); // no new connections; the members stay
            this.server = null;
            for (const l of this.links.values()) void l.send({ t: 'ready' }).catch(() => {});
            resolve();
          }
        };
      });
      server.listen(rv.port, host, () => {
        this.port = (server.address() as AddressInfo).port;
        rv.onListening?.(this.port);
      });
    });
  }

  private async join(rv: TcpRendezvous, connectTimeoutMs: number): Promise<void> {
    const host = rv.host ?? '127.0.0.1';
    const where = `rank 0 at ${host}:${rv.port}`;
    const deadline = Date.now() + connectTimeoutMs;
    let socket: Socket | null = null;
    let delay = 20;
    while (!socket) {
      try {
        socket = await connectOnce(host, rv.port, Math.max(1, deadline - Date.now()));
      } catch (e) {
        if (Date.now() + delay >= deadline) {
          throw new Error(`tcp rendezvous: rank ${this.rank} could not connect to ${where} within ${connectTimeoutMs} ms (${(e as Error).message})`);
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 500);
      }
    }
    const link = new Link(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        link.destroy('rendezvous timed out');
        reject(new Error(`tcp rendezvous: rank ${this.rank} joined ${where} but the group did not form within ${connectTimeoutMs} ms`));
      }, Math.max(1, deadline - Date.now()));
      link.onClose = (why) => {
        clearTimeout(timer);
        reject(new Error(`tcp rendezvous: the connection to ${where} closed before the group formed (${why})`));
      };
      link.onFrame = (frame) => {
        if (frame.header.t === 'ready') {
          clearTimeout(timer);
          link.onFrame = (f) => this.onFrame(0, f);
          link.onClose = (why) => this.onPeerClosed(0, why);
          resolve();
        } else {
          clearTimeout(timer);
          link.onClose = () => {};
          link.destroy('rejected');
          reject(new Error(`tcp rendezvous: ${where} rejected rank ${this.rank}: ${String(frame.header.reason ?? frame.header.t)}`));
        }
      };
      link.send({ t: 'hello', rank: this.rank, worldSize: this.worldSize, token: rv.token }).catch(() => {});
    });
    this.links.set(0, link);
  }

  // ---- incoming frames and failures ----

  private onFrame(src: number, frame: Frame): void {
    const h = frame.header;
    switch (h.t) {
      case 'coll': // a contribution, at rank 0
        this.mail.deliver(`c${String(h.seq)}:${src}`, frame);
        return;
      case 'result': // rank 0's answer
        this.mail.deliver(`c${String(h.seq)}:result`, frame);
        return;
      case 'p2p': {
        const from = h.src as number;
        const to = h.dst as number;
        if (to === this.rank) {
          this.mail.deliver(`p${from}`, frame);
        } else if (this.rank === 0) {
          const link = this.links.get(to);
          // A rank that has left takes nothing more; its sender learns of it from its own recv.
          if (link && !this.left.has(to)) void link.send(h, frame.payload).catch(() => {});
        }
        return;
      }
      case 'abort':
        this.fail(new Error(`rank 0 reports: ${String(h.reason)}`));
        return;
      case 'bye':
        this.left.add(src);
        if (this.mail.waitsOn(src)) this.fail(new Error(`rank ${src} closed its communicator while this rank was waiting for it`));
        this.onPeerChange?.();
        return;
      default:
        this.fail(new Error(`rank ${src} sent an unknown frame type '${h.t}'`));
    }
  }

  private onPeerClosed(peer: number, why: string): void {
    this.onPeerChange?.();
    if (this.left.has(peer) || this.state !== 'open') return;
    this.fail(new Error(`lost the connection to rank ${peer} (${why}); did that process exit?`));
  }

  /** Makes the communicator unusable; rank 0 tells the other ranks why. */
  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.mail.failAll(error);
    if (this.rank === 0) {
      for (const [r, link] of this.links) {
        if (!this.left.has(r)) void link.send({ t: 'abort', reason: error.message }).catch(() => {});
      }
    }
  }

  /** The next frame under `key` from `peer`; a timeout fails the communicator. */
  private expect(key: string, peer: number, timeoutMs: number, what: string): Promise<Frame> {
    if (this.left.has(peer)) {
      // The operation cannot complete on any rank: fail the group rather than leave the others waiting.
      const error = new Error(`rank ${peer} has closed its communicator`);
      this.fail(error);
      return Promise.reject(error);
    }
    return this.mail.take(key, peer, timeoutMs, () => {
      const error = new Error(`timed out after ${timeoutMs} ms waiting for rank ${peer} ${what}`);
      this.fail(error);
      return error;
    });
  }

  private async sendTo(peer: number, header: FrameHeader, payload?: Uint8Array): Promise<void> {
    const link = this.links.get(peer);
    if (!link || this.left.has(peer)) throw new Error(`rank ${peer} has closed its communicator`);
    try {
      await link.send(header, payload);
    } catch (e) {
      const error = new Error(`cannot send to rank ${peer}: ${(e as Error).message}`);
      this.fail(error);
      throw error;
    }
  }

  /** Runs one operation, with errors that name it and this rank. */
  private async run<T>(op: string, body: () => Promise<T>): Promise<T> {
    const where = `tcp ${op} on rank ${this.rank} of ${this.worldSize}`;
    if (this.state !== 'open') throw new Error(`${where}: the communicator is closed`);
    if (this.failure) throw new Error(`${where}: the communicator is unusable after an earlier failure: ${this.failure.message}`);
    try {
      return await body();
    } catch (e) {
      const err = e as Error;
      if (err instanceof TypeError) throw err; // argument checks already name the op
      throw new Error(`${where}: ${err.message}`, { cause: err });
    }
  }

  /**
   * One collective: every rank contributes (meta, payload); rank 0 checks and computes every rank's
   * result with `compute` (frames in rank order) and sends each its own. Resolves to this rank's.
   */
  private async collective(
    kind: string,
    meta: Record<string, unknown>,
    payload: Uint8Array,
    compute: (frames: Frame[]) => Uint8Array[],
  ): Promise<Uint8Array> {
    const seq = this.seq++;
    const header: FrameHeader = { t: 'coll', seq, kind, ...meta };
    if (this.worldSize === 1) return compute([{ header, payload }])[0];
    if (this.rank !== 0) {
      await this.sendTo(0, header, payload);
      // Rank 0 gets a head start to time out first, so the error names the rank that is really late.
      const wait = this.timeoutMs + Math.min(this.timeoutMs, 2000);
      const result = await this.expect(`c${seq}:result`, 0, wait, `to complete ${kind} (seq ${seq})`);
      if (typeof result.header.error === 'string') throw new OperationError(result.header.error);
      return result.payload;
    }
    const others = await Promise.all(
      Array.from({ length: this.worldSize - 1 }, (_, i) =>
        this.expect(`c${seq}:${i + 1}`, i + 1, this.timeoutMs, `to join ${kind} (seq ${seq})`),
      ),
    );
    const frames = [{ header, payload }, ...others];
    let results: Uint8Array[];
    try {
      const wrong = frames.findIndex((f) => f.header.kind !== kind);
      if (wrong >= 0) throw new OperationError(`rank ${wrong} called ${String(frames[wrong].header.kind)} where rank 0 called ${kind} (seq ${seq})`);
      results = compute(frames);
    } catch (e) {
      const message = (e as Error).message;
      await Promise.all(frames.slice(1).map((_, i) => this.sendTo(i + 1, { t: 'result', seq, error: message })));
      throw new OperationError(message);
    }
    await Promise.all(results.slice(1).map((bytes, i) => this.sendTo(i + 1, { t: 'result', seq }, bytes)));
    return results[0];
  }

  // ---- the operations ----

  allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    return this.run('allReduce', async () => {
      checkTensor('allReduce', 't', t, 'cpu');
      checkReduce('allReduce', t, op);
      const out = await this.collective('allReduce', { dtype: t.dtype, bytes: t.byteLength, op }, bytesOf(t), (frames) => {
        requireSame(frames, ['dtype', 'bytes', 'op']);
        const r = reduceBytes(t.dtype, op, frames.map((f) => f.payload));
        return frames.map(() => r);
      });
      writeInto(t, out);
      return t;
    });
  }

  allGather(t: Tensor): Promise<Tensor> {
    return this.run('allGather', async () => {
      checkTensor('allGather', 't', t, 'cpu');
      const out = await this.collective('allGather', { dtype: t.dtype, shape: t.shape }, bytesOf(t), (frames) => {
        requireSame(frames, ['dtype', 'shape']);
        const all = Buffer.concat(frames.map((f) => f.payload));
        return frames.map(() => all);
      });
      const result = Tensor.empty(gatheredShape(t.shape, this.worldSize), t.dtype, 'cpu');
      writeInto(result, out);
      return result;
    });
  }

  reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    return this.run('reduceScatter', async () => {
      checkTensor('reduceScatter', 't', t, 'cpu');
      checkReduce('reduceScatter', t, op);
      const shape = scatteredShape('reduceScatter', t, this.worldSize);
      const out = await this.collective('reduceScatter', { dtype: t.dtype, shape: t.shape, op }, bytesOf(t), (frames) => {
        requireSame(frames, ['dtype', 'shape', 'op']);
        const r = reduceBytes(t.dtype, op, frames.map((f) => f.payload));
        const block = r.byteLength / this.worldSize;
        return frames.map((_, i) => r.subarray(i * block, (i + 1) * block));
      });
      const result = Tensor.empty(shape, t.dtype, 'cpu');
      writeInto(result, out);
      return result;
    });
  }

  broadcast(t: Tensor, root: number): Promise<Tensor> {
    return this.run('broadcast', async () => {
      checkTensor('broadcast', 't', t, 'cpu');
      checkPeer('broadcast', 'root', root, this.worldSize);
      const mine = this.rank === root ? bytesOf(t) : EMPTY;
      const out = await this.collective('broadcast', { dtype: t.dtype, bytes: t.byteLength, root }, mine, (frames) => {
        requireSame(frames, ['dtype', 'bytes', 'root']);
        const data = frames[root].payload;
        return frames.map((_, i) => (i === root ? EMPTY : data));
      });
      if (this.rank !== root) writeInto(t, out);
      return t;
    });
  }

  barrier(): Promise<void> {
    return this.run('barrier', async () => {
      await this.collective('barrier', {}, EMPTY, (frames) => frames.map(() => EMPTY));
    });
  }

  send(t: Tensor, peer: number): Promise<void> {
    return this.run('send', async () => {
      checkTensor('send', 't', t, 'cpu');
      checkPeer('send', 'peer', peer, this.worldSize);
      const header: FrameHeader = { t: 'p2p', src: this.rank, dst: peer, dtype: t.dtype, bytes: t.byteLength };
      if (peer === this.rank) this.mail.deliver(`p${peer}`, { header, payload: bytesOf(t) });
      else await this.sendTo(this.rank === 0 ? peer : 0, header, bytesOf(t));
    });
  }

  recv(t: Tensor, peer: number): Promise<Tensor> {
    return this.run('recv', async () => {
      checkTensor('recv', 't', t, 'cpu');
      checkPeer('recv', 'peer', peer, this.worldSize);
      const frame = await this.expect(`p${peer}`, peer, this.timeoutMs, 'to send');
      const { dtype, bytes } = frame.header;
      if (dtype !== t.dtype || bytes !== t.byteLength) {
        throw new OperationError(`rank ${peer} sent ${String(dtype)} (${String(bytes)} bytes) but the receiving tensor is ${t.describe()} (${t.byteLength} bytes)`);
      }
      writeInto(t, frame.payload);
      return t;
    });
  }

  async sendRecv(sendT: Tensor, dst: number, recvT: Tensor, src: number): Promise<Tensor> {
    const [, received] = await Promise.all([this.send(sendT, dst), this.recv(recvT, src)]);
    return received;
  }

  /**
   * Leaves the group. Rank 0 waits (up to timeoutMs) for the other ranks to close first, so call it
   * on every rank once the last operation has resolved.
   */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    const linger = Math.min(this.timeoutMs, 10_000);
    if (this.rank !== 0) {
      const link = this.links.get(0);
      if (link) {
        if (!this.failure) await link.send({ t: 'bye' }).catch(() => {});
        await link.end(linger);
      }
    } else {
      if (!this.failure) await this.allPeersGone(this.timeoutMs);
      await Promise.all([...this.links.values()].map((l) => l.end(linger)));
      this.server?.close();
    }
    this.state = 'closed';
    this.mail.failAll(new Error('the communicator was closed'));
  }

  /** Resolves once every other rank has said bye or disconnected, or after timeoutMs. */
  private allPeersGone(timeoutMs: number): Promise<void> {
    const done = () => [...this.links].every(([r, l]) => this.left.has(r) || l.isClosed);
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.onPeerChange = null;
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.onPeerChange = () => {
        if (done()) finish();
      };
    });
  }
}

/** Throws an OperationError naming the first rank whose `fields` differ from rank 0's. */
function requireSame(frames: Frame[], fields: string[]): void {
  const describe = (h: FrameHeader) => fields.map((f) => `${f} ${JSON.stringify(h[f])}`).join(', ');
  const want = describe(frames[0].header);
  for (let r = 1; r < frames.length; r++) {
    const got = describe(frames[r].header);
    if (got !== want) throw new OperationError(`ranks disagree: rank ${r} passed ${got} but rank 0 passed ${want}`);
  }
}

function connectOnce(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timed out'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
