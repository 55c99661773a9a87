"""Forward-pass throughput on CPU: thought_anchors.Model against transformers.

A random model with the Qwen2-0.5B shape (hidden 896, 24 layers, 14 query / 2
key-value heads, intermediate 4864, vocabulary 151936, tied embeddings) is
written to a temporary folder with `save_pretrained`; both libraries then run
full-sequence forward passes (all-position logits, float32, no KV cache) over
the same random token ids, with the same number of intra-op threads and
transformers' default attention ("sdpa"). Runs of the two alternate so that
background load hits both alike; the table reports medians.

    .venv/bin/python bench/bench_forward.py                  # all cores torch sees
    .venv/bin/python bench/bench_forward.py --threads 2 --lengths 512 2048 --repeats 3

Prints one Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time

import torch

QWEN2_05B_SHAPE = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
    tie_word_embeddings=True,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
)


def make_checkpoint(folder: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN2_05B_SHAPE)).eval()  # transformers' random init
    model.save_pretrained(folder)
    return model


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads for both")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048], help="sequence lengths (tokens)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per library and length")
    args = parser.parse_args()

    import thought_anchors as ta
    import transformers

    torch.set_num_threads(args.threads)  # one intra-op pool: LibTorch's, shared by both libraries
    with tempfile.TemporaryDirectory(prefix="anchors-bench-") as folder:
        created = time.perf_counter()
        hf_model = make_checkpoint(folder)
        ours = ta.Model.load(folder, dtype=torch.float32, device="cpu")
        setup_s = time.perf_counter() - created
        print(f"checkpoint + loading: {setup_s:.0f} s; transformers {transformers.__version__} "
              f"(attention: {hf_model.config._attn_implementation}), torch {torch.__version__}, "
              f"{args.threads} threads")

        def run_ours(ids):
            return ours.logits(ids)

        def run_transformers(ids):
            with torch.no_grad():
                return hf_model(ids[None]).logits

        rows = []
        generator = torch.Generator().manual_seed(1)
        for index, tokens in enumerate(args.lengths):
            ids = torch.randint(0, QWEN2_05B_SHAPE["vocab_size"], (tokens,), generator=generator)
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
    print(f"\nCPU, float32, {args.threads} threads, median of {args.repeats} runs each, "
          f"random Qwen2-0.5B-shaped model (494M parameters), full-sequence logits.")


if __name__ == "__main__":
    main()
