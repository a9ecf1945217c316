/**
 * Runs a multi-process collective scenario: forks one worker per rank (the compiled
 * dist/test/helpers/collective_worker.js, so `npm test`'s pretest tsc must have run), starts rank 0,
 * hands what it publishes (its port, or the NCCL unique id) to the other ranks over IPC, and
 * collects every rank's result and exit code.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StartMessage } from './collective_worker.js';

/** The package root (this file runs from test/helpers under vitest, or dist/test/helpers compiled). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
const root = packageRoot();
export const workerPath = join(root, 'dist/test/helpers/collective_worker.js');

/** Why the compiled worker cannot be used ('' when it can): missing, or older than its sources. */
export function workerUnavailable(): string {
  if (!existsSync(workerPath)) return `${workerPath} is missing: run \`npx tsc -p tsconfig.json\` (npm test does it in pretest)`;
  const pairs = [
    ['test/helpers/collective_worker.ts', 'dist/test/helpers/collective_worker.js'],
    ['test/helpers/collective_cases.ts', 'dist/test/helpers/collective_cases.js'],
    ...['communicator', 'framing', 'index', 'link', 'mailbox', 'nccl', 'reduce', 'tcp'].map((f) => [
      `src/runtime/collectives/${f}.ts`,
      `dist/src/runtime/collectives/${f}.js`,
    ]),
  ];
  for (const [src, out] of pairs) {
    const o = join(root, out);
    if (!existsSync(o) || statSync(o).mtimeMs < statSync(join(root, src)).mtimeMs) {
      return `${out} is older than ${src}: run \`npx tsc -p tsconfig.json\` (npm test does it in pretest)`;
    }
  }
  return '';
}

export interface RankOutcome {
  rank: number;
  ok: boolean;
  data: any; // the scenario's report, checked field by field by the tests
  error: string;
  exitCode: number | null;
  stderr: string;
}

interface GroupOptions {
  scenario: StartMessage['scenario'];
  worldSize: number;
  timeoutMs?: number;
  /** Kill everything and fail after this long (default 60 s). */
  deadlineMs?: number;
}

export async function runGroup(options: GroupOptions): Promise<RankOutcome[]> {
  const { scenario, worldSize } = options;
  const children: ChildProcess[] = [];
  const outcomes: RankOutcome[] = Array.from({ length: worldSize }, (_, rank) => ({
    rank,
    ok: false,
    data: undefined,
    error: 'no result',
    exitCode: null,
    stderr: '',
  }));
  const exited: Promise<void>[] = [];
  let started = worldSize === 1;
  for (let rank = 0; rank < worldSize; rank++) {
    const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    children.push(child);
    child.stderr!.on('data', (d: Buffer) => (outcomes[rank].stderr += d.toString()));
    child.on('message', (m: { type: string; ok?: boolean; data?: unknown; error?: string; port?: number; uniqueId?: number[] }) => {
      if (m.type === 'result') Object.assign(outcomes[rank], { ok: m.ok, data: m.data, error: m.error ?? '' });
      if (m.type === 'rendezvous' && rank === 0 && !started) {
        started = true;
        for (let r = 1; r < worldSize; r++) children[r].send(start(r, m.port, m.uniqueId));
      }
      if (m.type === 'result' && rank === 0 && !started) {
        // Rank 0 failed before publishing the rendezvous: the others would wait for ever.
        for (let r = 1; r < worldSize; r++) {
          outcomes[r].error = 'never started: rank 0 failed before the rendezvous';
          children[r].kill('SIGKILL');
        }
      }
    });
    exited.push(new Promise((res) => child.on('exit', (code) => ((outcomes[rank].exitCode = code), res()))));
  }
  const start = (rank: number, port?: number, uniqueId?: number[]): StartMessage => ({
    type: 'start',
    scenario,
    rank,
    worldSize,
    port,
    uniqueId,
    timeoutMs: options.timeoutMs,
  });
  children[0].send(start(0));

  const deadlineMs = options.deadlineMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    Promise.all(exited).then(() => false),
    new Promise<boolean>((res) => (timer = setTimeout(() => res(true), deadlineMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    const report = outcomes.map((o) => `rank ${o.rank}: exit ${o.exitCode}, ${o.ok ? 'ok' : o.error}\n${o.stderr}`).join('\n');
    throw new Error(`${scenario}: the workers did not all exit within ${deadlineMs} ms\n${report}`);
  }
  return outcomes;
}
