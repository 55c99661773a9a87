"""Credit weights for RL on CPU: `ta.token_weights` against a plain forward pass of the same batch.

The workload of one RL step's credit assignment: a batch of --batch responses of --response tokens after
--prompt-token prompts (random ids, no padding so both sides see the same tokens), on a random model with the
Qwen2-0.5B shape (bench_forward.py's checkpoint), float32. Ours: `ta.token_weights(model, prompts,
responses, strategy=...)` for each strategy (one attention_rhythm pass per row: the forward pass plus band
statistics of the middle third of the layers). Baseline: `model.hidden_states(batch)`, our own forward pass
over the same [B, P + R] batch without the vocabulary projection (what a trainer's reference forward costs
before its lm_head). Runs alternate; medians of --repeats. Goal (issue 14): at most 1.3x the baseline.

    .venv/bin/python bench/bench_token_weights.py --threads 2                          # 16 x 2048 (long)
    .venv/bin/python bench/bench_token_weights.py --threads 2 --batch 4 --response 512 # quick

Prints one Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from bench_forward import make_checkpoint, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--response", type=int, default=2048, help="response tokens per row")
    parser.add_argument("--strategies", nargs="+", default=["union", "preplan", "anchor", "coupled"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import thought_anchors as ta

    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder)
        model = ta.Model.load(folder)
        g = torch.Generator().manual_seed(0)
        vocab = model.config.vocab_size
        prompts = torch.randint(0, vocab, (args.batch, args.prompt_tokens), generator=g)
        responses = torch.randint(0, vocab, (args.batch, args.response), generator=g)
        batch = torch.cat([prompts, responses], dim=1)
        # Warm-up: fault in every weight page once.
        model.logits(batch[0, :16])
        model.hidden_states(batch[:1, :64])
        times = {"forward": []}
        for name in args.strategies:
            times[name] = []
        for _ in range(args.repeats):
            times["forward"].append(seconds(lambda: model.hidden_states(batch)))
            for name in args.strategies:
                times[name].append(seconds(lambda: ta.token_weights(model, prompts, responses, strategy=name)))
        base = statistics.median(times["forward"])
        print(f"\nbatch {args.batch} x ({args.prompt_tokens} prompt + {args.response} response) tokens, "
              f"{args.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
        print("| what | wall s | ratio to the forward pass | goal |")
        print("|---|---:|---:|:--|")
        print(f"| `model.hidden_states(batch)` (plain forward, baseline) | {base:.2f} | 1.00× | |")
        for name in args.strategies:
            t = statistics.median(times[name])
            ratio = t / base
            print(f"| `ta.token_weights(..., strategy=\"{name}\")` | {t:.2f} | {ratio:.2f}× | "
                  f"{'met' if ratio <= 1.3 else 'not met'} (≤ 1.3×) |")


if __name__ == "__main__":
    main()
