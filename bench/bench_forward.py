"""Forward-pass throughput on CPU: thought_anchors.Model against transformers.

A random model of one of the shapes below is written to a temporary folder
with `save_pretrained`; both libraries then run full-sequence forward passes
(float32, no KV cache) over the same random token ids, with the same number of
intra-op threads and transformers' default attention ("sdpa") and, for MoE,
its default experts implementation. Runs of the two alternate so that
background load hits both alike; the table reports medians.

- `qwen2-0.5b`: Qwen2-0.5B (hidden 896, 24 layers, 14 query / 2 key-value
  heads, intermediate 4864, vocabulary 151936, tied embeddings); all-position
  logits.
- `qwen3-moe`: two decoder layers of Qwen3-30B-A3B (hidden 2048, 32 query / 4
  key-value heads of 128, q/k norms, 128 experts of inner size 768, top-8
  renormalised); final hidden states (the decoder stack: the vocabulary
  projection is the same GEMM in both libraries, so a small vocabulary keeps
  the two models within this machine's memory).

    .venv/bin/python bench/bench_forward.py                  # all cores torch sees
    .venv/bin/python bench/bench_forward.py --threads 2 --lengths 512 2048 --repeats 3
    .venv/bin/python bench/bench_forward.py --shape qwen3-moe --threads 2 --lengths 128 512 2048 --repeats 3

Prints one Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time

import torch

SHAPES = {
    "qwen2-0.5b": (
        "Qwen2",
        dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
             intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768,
             rope_theta=1000000.0),
        "logits",
    ),
    "qwen3-moe": (
        "Qwen3Moe",
        dict(hidden_size=2048, num_hidden_layers=2, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
             intermediate_size=6144, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
             norm_topk_prob=True, vocab_size=4096, tie_word_embeddings=True, max_position_embeddings=40960,
             rope_theta=1000000.0),
        "hidden",
    ),
}


def make_checkpoint(shape: str, folder: str):
    import transformers

    family, sizes, _ = SHAPES[shape]
    config = getattr(transformers, f"{family}Config")(**sizes)
    torch.manual_seed(0)
    model = getattr(transformers, f"{family}ForCausalLM")(config).eval()  # transformers' random init
    model.save_pretrained(folder)
    return model


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=list(SHAPES), default="qwen2-0.5b", help="model shape (see above)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads for both")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048], help="sequence lengths (tokens)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per library and length")
    args = parser.parse_args()

    import thought_anchors as ta
    import transformers

    torch.set_num_threads(args.threads)  # one intra-op pool: LibTorch's, shared by both libraries
    with tempfile.TemporaryDirectory(prefix="anchors-bench-") as folder:
        created = time.perf_counter()
        hf_model = make_checkpoint(args.shape, folder)
        ours = ta.Model.load(folder, dtype=torch.float32, device="cpu")
        setup_s = time.perf_counter() - created
        _, sizes, output = SHAPES[args.shape]
        experts = getattr(hf_model.config, "_experts_implementation_internal", None)
        print(f"checkpoint + loading: {setup_s:.0f} s; transformers {transformers.__version__} "
              f"(attention: {hf_model.config._attn_implementation}"
              f"{f', experts: {experts}' if experts else ''}), torch {torch.__version__}, {args.threads} threads")

        def run_ours(ids):
            return ours.logits(ids) if output == "logits" else ours.hidden_states(ids)

        def run_transformers(ids):
            with torch.no_grad():
                if output == "logits":
                    return hf_model(ids[None]).logits
                return hf_model.model(ids[None]).last_hidden_state

        rows = []
        generator = torch.Generator().manual_seed(1)
        for index, tokens in enumerate(args.lengths):
            ids = torch.randint(0, sizes["vocab_size"], (tokens,), generator=generator)
            if index == 0:  # warm-up: first-touch of the weights, allocator, thread pool
                run_ours(ids[:64])
                run_transformers(ids[:64])
            times = {"ours": [], "transformers": []}
            for _ in range(args.repeats):
                times["ours"].append(seconds(lambda: run_ours(ids)))
                gc.collect()
                times["transformers"].append(seconds(lambda: run_transformers(ids)))
                gc.collect()
            ours_s, hf_s = statistics.median(times["ours"]), statistics.median(times["transformers"])
            rows.append((tokens, tokens / ours_s, tokens / hf_s, ours_s, hf_s))

    print()
    print(f"| tokens | thought_anchors tok/s | transformers tok/s | speed-up | "
          f"thought_anchors s | transformers s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for tokens, ours_tps, hf_tps, ours_s, hf_s in rows:
        print(f"| {tokens} | {ours_tps:.0f} | {hf_tps:.0f} | {ours_tps / hf_tps:.2f}x | {ours_s:.2f} | {hf_s:.2f} |")
    print(f"\nCPU, float32, {args.threads} threads, median of {args.repeats} runs each, random {args.shape}-shaped "
          f"model ({ours.num_parameters / 1e6:.0f}M parameters), full-sequence "
          f"{'logits' if output == 'logits' else 'final hidden states'}.")


if __name__ == "__main__":
    main()
