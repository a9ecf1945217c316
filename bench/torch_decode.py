"""transformers reference for bench/decode.ts: LlamaForCausalLM with Llama-3.1-8B shapes, random bf16
weights made on the GPU (no download), batch 1, a prompt of --context random ids, greedy
model.generate (sdpa, the default dynamic KV cache, no torch.compile: ANCHORS.md's "generate, eager"
setting). Decode tokens/s = (steps - 1) / (time of generate(steps) - time of generate(1)): the prefill
and first token are subtracted. Median of --iters runs each. Prints one JSON line.
"""
import argparse
import json
import statistics
import time

import torch
import transformers

from torch_prefill import llama8b_config, random_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    cfg = llama8b_config()
    model = random_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, a.context), device="cuda")
    mask = torch.ones_like(ids)

    def gen(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                                 pad_token_id=0)
        torch.cuda.synchronize()
        assert out.shape[1] == a.context + n, out.shape
        return time.perf_counter() - t0

    gen(4)  # warm up
    one = statistics.median(gen(1) for _ in range(a.iters))
    full = statistics.median(gen(a.steps) for _ in range(a.iters))
    print(json.dumps({
        "torch": torch.__version__, "transformers": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
        "context": a.context, "steps": a.steps, "first_token_s": one, "generate_s": full,
        "tokens_per_s": (a.steps - 1) / (full - one),
    }))


if __name__ == "__main__":
    main()
