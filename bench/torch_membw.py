"""PyTorch reference for bench/membw.ts: torch's own device copy ceiling (a 1 GiB device-to-device
copy, read + write counted, exactly as bench/harness.ts copyCeiling measures Aerie's) and torch's
eager versions of the forward ops, timed the same way: CUDA events around each call, all calls
queued before one synchronisation, median of --iters after --warmup. Byte counts use the same
convention as membw.ts (each input read once, each output written once), so percentages compare.
Prints one JSON line.
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def time_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        starts[i].record()
        fn()
        ends[i].record()
    ends[-1].synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=32768)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    dev = torch.device("cuda")
    bf16 = torch.bfloat16

    nbytes = 1 << 30
    src = torch.ones(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), a.warmup, a.iters)
    ceiling = 2 * nbytes / (copy_ms * 1e-3)
    del src, dst
    torch.cuda.empty_cache()

    r, c = a.rows, a.cols
    n = r * c
    x = torch.full((r, c), 0.0115, dtype=bf16, device=dev)
    y = torch.full((r, c), 0.0115, dtype=bf16, device=dev)
    out = torch.empty((r, c), dtype=bf16, device=dev)
    w = torch.ones(c, dtype=bf16, device=dev)
    gu = torch.full((r, 2 * c), 0.0115, dtype=bf16, device=dev)
    results = []

    def add(name, nbytes, fn):
        results.append({"name": name, "bytes": nbytes, "median_ms": time_ms(fn, a.warmup, a.iters)})

    add("add a + b", 3 * n * 2, lambda: torch.add(x, y, out=out))
    if hasattr(F, "rms_norm"):
        add("rmsnorm fwd", 2 * n * 2 + c * 2 + r * 4, lambda: F.rms_norm(x, (c,), w, 1e-6))
    add("swiglu fwd", 3 * n * 2, lambda: F.silu(x) * y)
    add("swiglu fwd (fused gate|up)", 3 * n * 2, lambda: F.silu(gu[:, :c]) * gu[:, c:])

    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                      "copy_ceiling_bytes_per_s": ceiling, "results": results}))


if __name__ == "__main__":
    main()
