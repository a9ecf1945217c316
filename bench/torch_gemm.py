"""PyTorch reference for bench/gemm.ts: torch.matmul(x, w.t(), out=y) on the Llama-3.1-8B projection
shapes, bf16 in and out (cuBLAS/cuBLASLt underneath, as in Aerie). Same methodology as the Aerie
side: CUDA events around each call, all calls queued before one synchronisation, median of --iters
after --warmup, rotating through --sets different (x, w) pairs. Prints one JSON line.
"""
import argparse
import json
import statistics

import torch

SHAPES = [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate_up", 28672, 4096), ("down", 4096, 14336)]


def time_ms(fn, warmup, iters):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        starts[i].record()
        fn(i)
        ends[i].record()
    ends[-1].synchronize()
    times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=8192)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--sets", type=int, default=3)
    a = ap.parse_args()

    dev = torch.device("cuda")
    torch.manual_seed(0)
    results = []
    for name, n, k in SHAPES:
        xs = [torch.rand(a.m, k, device=dev, dtype=torch.bfloat16) * 2 - 1 for _ in range(a.sets)]
        ws = [torch.rand(n, k, device=dev, dtype=torch.bfloat16) * 2 - 1 for _ in range(a.sets)]
        y = torch.empty(a.m, n, device=dev, dtype=torch.bfloat16)
        ms, all_ms = time_ms(lambda i: torch.matmul(xs[i % a.sets], ws[i % a.sets].t(), out=y), a.warmup, a.iters)
        flops = 2 * a.m * n * k
        results.append({"name": name, "m": a.m, "n": n, "k": k, "median_ms": ms, "tflops": flops / (ms * 1e-3) / 1e12, "all_ms": all_ms})
        del xs, ws, y
        torch.cuda.empty_cache()

    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "results": results}))


if __name__ == "__main__":
    main()
