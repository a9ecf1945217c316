"""transformers reference for bench/prefill.ts: LlamaForCausalLM with Llama-3.1-8B shapes, random bf16
weights made on the GPU (no download), sdpa attention, input [batch, seq] of random ids,
output_hidden_states=True (what datagen taps), use_cache=False, under torch.inference_mode().
Timed twice: logits_to_keep=1 (the same work as Aerie's run: logits only at each sequence's last
position) and all logits (what ANCHORS.md's figure measured). Same methodology as the Aerie side:
CUDA events around each call, all calls queued before one synchronisation, median of --iters after
--warmup. Prints one JSON line.
"""
import argparse
import json
import statistics

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


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
    times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    return statistics.median(times), times


def llama8b_config():
    kw = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
              bos_token_id=128000, eos_token_id=[128001, 128008, 128009])
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
    if int(transformers.__version__.split(".")[0]) >= 5:
        cfg = LlamaConfig(rope_parameters={"rope_theta": 500000.0, **rope}, **kw)
    else:
        cfg = LlamaConfig(rope_theta=500000.0, rope_scaling=rope, **kw)
    cfg._attn_implementation = "sdpa"
    return cfg


def random_model(cfg):
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1)
            else:
                p.normal_(0, 0.02)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--taps", default="2,16,29,32", help="layer ids the Aerie run taps (transformers returns all)")
    ap.add_argument("--no-full", action="store_true", help="skip the all-logits timing")
    a = ap.parse_args()
    cfg = llama8b_config()
    model = random_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda")
    out = {"torch": torch.__version__, "transformers": transformers.__version__,
           "attn_implementation": model.config._attn_implementation}

    with torch.inference_mode():
        def keep1():
            r = model(input_ids=ids, output_hidden_states=True, use_cache=False, logits_to_keep=1)
            return r.hidden_states

        out["keep1_ms"], out["keep1_all_ms"] = time_ms(keep1, a.warmup, a.iters)
        out["full_ms"] = None
        if not a.no_full:
            def full():
                r = model(input_ids=ids, output_hidden_states=True, use_cache=False)
                return r.logits

            out["full_ms"], out["full_all_ms"] = time_ms(full, a.warmup, a.iters)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
