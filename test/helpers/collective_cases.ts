/**
 * Inputs of the multi-process collective tests and their exact expected results, shared by the
 * worker processes (which run the compiled copy in dist/) and the tests (which check the results).
 * Every value is exactly representable and every sum exact in the storage dtype, so results can be
 * compared with toEqual.
 */

export const TCP_WORLD = 3;

/** Rank r's inputs for the TCP scenario. int64 values are decimal strings (beyond 2^53). */
export function tcpInputs(r: number) {
  const n = 1000;
  return {
    sumF32: Array.from({ length: n }, (_, i) => (i % 7) - 3 + r * 0.25 + (i % 3) * 1024),
    maxF32: Array.from({ length: n }, (_, i) => ((i * 7 + r * 3) % 11) - 5.5),
    minF32: Array.from({ length: 17 }, (_, i) => ((i * 5 + r * 7) % 13) - 6),
    // (r + 1) * 2^30 summed over three ranks is 6 * 2^30: wraps around int32.
    sumI32: [(r + 1) * 2 ** 30, -r, 7 * r, 2 ** 31 - 1],
    maxI32: [r, -r, 10 - r, -(2 ** 31)],
    sumI64: [String(2n ** 60n + BigInt(r)), String(-(2n ** 53n) - BigInt(r)), String(BigInt(r) * 1000n)],
    // bf16 keeps 8 significant bits: small multiples of (r + 1) are exact, and so is their average.
    avgBf16: Array.from({ length: 33 }, (_, i) => (r + 1) * (i - 16)),
    sumF16: Array.from({ length: 9 }, (_, i) => (i - 4) * (r + 1) * 0.5),
    gather: Array.from({ length: 6 }, (_, i) => r * 10 + i), // [2, 3]
    scatter: Array.from({ length: 12 }, (_, i) => (r + 1) * i), // [6, 2]
    bcast: Array.from({ length: 5 }, (_, i) => r * 100 + i),
    ring: Array.from({ length: 4 }, (_, i) => r + i / 8),
  };
}

function zip(world: number, pick: (r: number) => number[], combine: (a: number, b: number) => number): number[] {
  const out = [...pick(0)];
  for (let r = 1; r < world; r++) pick(r).forEach((v, i) => (out[i] = combine(out[i], v)));
  return out;
}

/** What every rank of the TCP scenario must report (rank-dependent entries take the rank). */
export function tcpExpected(world: number) {
  const inp = tcpInputs;
  const sumI64 = inp(0).sumI64.map((_, i) => {
    let s = 0n;
    for (let r = 0; r < world; r++) s += BigInt(inp(r).sumI64[i]);
    return String(BigInt.asIntN(64, s));
  });
  const scatterAll = zip(world, (r) => inp(r).scatter, (a, b) => a + b);
  const block = scatterAll.length / world;
  return {
    sumF32: zip(world, (r) => inp(r).sumF32, (a, b) => a + b),
    maxF32: zip(world, (r) => inp(r).maxF32, Math.max),
    minF32: zip(world, (r) => inp(r).minF32, Math.min),
    sumI32: zip(world, (r) => inp(r).sumI32, (a, b) => (a + b) | 0),
    maxI32: zip(world, (r) => inp(r).maxI32, (a, b) => Math.max(a, b) | 0), // int32 has no -0
    sumI64,
    avgBf16: zip(world, (r) => inp(r).avgBf16, (a, b) => a + b).map((v) => v / world),
    sumF16: zip(world, (r) => inp(r).sumF16, (a, b) => a + b),
    gather: Array.from({ length: world }, (_, r) => inp(r).gather).flat(),
    gatherShape: [2 * world, 3],
    scatter: (rank: number) => scatterAll.slice(rank * block, (rank + 1) * block),
    scatterShape: [6 / world, 2],
    bcast: inp(1).bcast, // root 1
    ring: (rank: number) => inp((rank + world - 1) % world).ring, // from the previous rank
    direct: inp(2).ring, // rank 2 -> rank 1 through rank 0
  };
}

export const NCCL_WORLD = 2;

/** Rank r's inputs for the 2-GPU NCCL scenario. */
export function ncclInputs(r: number) {
  return {
    sumF32: Array.from({ length: 4099 }, (_, i) => (i % 13) - 6 + r * 0.5), // not a multiple of any tile
    sumBf16: Array.from({ length: 257 }, (_, i) => ((i % 9) - 4) * (r + 1)),
    maxF32: Array.from({ length: 100 }, (_, i) => ((i * 3 + r * 5) % 17) - 8),
    avgF32: Array.from({ length: 64 }, (_, i) => i * (r + 1)),
    gather: Array.from({ length: 6 }, (_, i) => r * 10 + i), // [2, 3]
    scatter: Array.from({ length: 8 }, (_, i) => (r + 1) * i), // [4, 2]
    bcast: Array.from({ length: 5 }, (_, i) => r * 100 + i),
    swap: Array.from({ length: 7 }, (_, i) => r * 1000 + i),
  };
}

export function ncclExpected(world: number) {
  const inp = ncclInputs;
  const scatterAll = zip(world, (r) => inp(r).scatter, (a, b) => a + b);
  const block = scatterAll.length / world;
  return {
    sumF32: zip(world, (r) => inp(r).sumF32, (a, b) => a + b),
    sumBf16: zip(world, (r) => inp(r).sumBf16, (a, b) => a + b),
    maxF32: zip(world, (r) => inp(r).maxF32, Math.max),
    avgF32: zip(world, (r) => inp(r).avgF32, (a, b) => a + b).map((v) => v / world),
    gather: Array.from({ length: world }, (_, r) => inp(r).gather).flat(),
    scatter: (rank: number) => scatterAll.slice(rank * block, (rank + 1) * block),
    bcast: inp(1).bcast,
    swap: (rank: number) => inp(world - 1 - rank).swap,
  };
}
