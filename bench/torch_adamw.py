"""PyTorch reference for bench/adamw.ts: torch.optim.AdamW(fused=True) over one fp32 parameter of
--n elements with an fp32 gradient (torch's fused AdamW wants the gradient in the parameter's
dtype), and torch's own device copy ceiling (a 1 GiB device-to-device copy, read + write counted,
as bench/harness.ts copyCeiling measures Aerie's). Timed like the Aerie side: CUDA events around
each step, all steps queued before one synchronisation, median of --iters after --warmup. Bytes:
p, m, v read and written plus the gradient read = 28 per element, the convention of adamw.ts.
Prints one JSON line.
"""
import argparse
import json
import statistics

import torch


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
    ap.add_argument("--n", type=int, default=256 << 20)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    dev = torch.device("cuda")

    nbytes = 1 << 30
    src = torch.ones(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ceiling = 2 * nbytes / (time_ms(lambda: dst.copy_(src), a.warmup, a.iters) * 1e-3)
    del src, dst
    torch.cuda.empty_cache()

    p = torch.nn.Parameter(torch.full((a.n,), 0.0115, dtype=torch.float32, device=dev))
    p.grad = torch.full((a.n,), 0.0115, dtype=torch.float32, device=dev)
    opt = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.01, fused=True)
    ms = time_ms(opt.step, a.warmup, a.iters)
    results = [{"name": "torch AdamW fused, f32 grad", "bytes": 28 * a.n, "median_ms": ms}]
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                      "copy_ceiling_bytes_per_s": ceiling, "results": results}))


if __name__ == "__main__":
    main()
