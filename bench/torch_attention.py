"""PyTorch reference for bench/attention.ts: scaled_dot_product_attention forced onto the flash
backend (torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION), so it errors rather than
silently falling back), causal, bf16, forward and backward. GQA with enable_gqa=True (torch >= 2.5,
the kv heads stay unexpanded, as in Aerie); on an older torch the kv heads are repeat_interleave'd
once outside the timed region, and the output says so ("gqa"). Same methodology as the Aerie side:
CUDA events around each call, median of --iters after --warmup. Inputs are laid out (B, L, H, D)
like Aerie's [T, H, hd] and transposed to SDPA's (B, H, L, D) as views. Prints one JSON line.
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--L", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--hd", type=int, default=128)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    a = ap.parse_args()

    dev = torch.device("cuda")
    torch.manual_seed(0)
    mk = lambda h: torch.randn(1, a.L, h, a.hd, device=dev, dtype=torch.bfloat16).transpose(1, 2).detach()
    q = mk(a.heads).requires_grad_()
    k = mk(a.kv_heads).requires_grad_()
    v = mk(a.kv_heads).requires_grad_()
    dout = mk(a.heads)

    gqa = "enable_gqa"
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        try:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            attn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            inputs = (q, k, v)
        except (TypeError, RuntimeError):
            gqa = "repeat_interleave"
            rep = a.heads // a.kv_heads
            ke = k.detach().repeat_interleave(rep, dim=1).requires_grad_()
            ve = v.detach().repeat_interleave(rep, dim=1).requires_grad_()
            out = F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
            attn = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
            inputs = (q, ke, ve)

        def fwd():
            with torch.no_grad():
                attn()

        def bwd():
            torch.autograd.grad(out, inputs, dout, retain_graph=True)

        fwd_ms, fwd_all = time_ms(fwd, a.warmup, a.iters)
        bwd_ms, bwd_all = time_ms(bwd, a.warmup, a.iters)

    print(json.dumps({
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "backend": "flash",
        "gqa": gqa,
        "fwd_ms": fwd_ms,
        "bwd_ms": bwd_ms,
        "fwd_all_ms": fwd_all,
        "bwd_all_ms": bwd_all,
    }))


if __name__ == "__main__":
    main()
