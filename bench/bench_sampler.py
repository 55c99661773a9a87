"""Resampling throughput on CPU: our shared-prefix sampler against transformers `generate`.

The workload of one sentence of black-box resampling: --rollouts continuations
(default 100) of --new-tokens new tokens each (default 128) from one shared
prompt of --prefix random tokens (default 512), temperature 0.6, top-p 0.95,
on a random model with the Qwen2-0.5B shape (see bench_whitebox.py; final
RMSNorm weight × --logit-scale so next-token distributions are peaked like a
trained model's). No stop tokens: every continuation is exactly --new-tokens
long on both sides (transformers gets min_new_tokens = max_new_tokens and no
EOS), so both sides generate the same number of tokens.

- ours: `model.sample(prompt, n, temperature=0.6, top_p=0.95, max_new_tokens=..., seed=0)`:
  the prompt is prefilled once (batch 1) and its KV cache fanned out to the n lanes.
- transformers: `model.generate(prompt[None], do_sample=True, temperature=0.6, top_p=0.95,
  num_return_sequences=n, max_new_tokens=..., min_new_tokens=...)` with its default
  (sdpa) attention and dynamic cache: the prompt is expanded to n rows before prefill.

Each side runs in a fresh child process (this script with --case), after one warm-up call on a
short prompt, so that its peak resident memory can be read ("extra MiB" = peak RSS during the
timed run minus the RSS after loading and warming up; see bench_whitebox.PeakMeter). Tokens/s =
n × new tokens / wall seconds of the call (prefill included). CPU seconds (user + system of the
process) are printed too: they are less sensitive to other load on the machine than wall time.

    .venv/bin/python bench/bench_sampler.py --threads 2          # the full run (about 15 min on 2 cores)
    .venv/bin/python bench/bench_sampler.py --tiny               # smoke run, a 2-layer toy model
    .venv/bin/python bench/bench_sampler.py --embedded           # the embedded model (models/tiny-reasoner)

With --embedded the model is the trained 1.8M-parameter embedded checkpoint (vocabulary 863): a step
costs little, so the table shows what the sampler itself spends per lane and step (the demo's
100 rollouts per sentence).

Prints a Markdown table (paste into docs/benchmarks.md). Goal (issue 5): at least 2x the tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_whitebox import QWEN2_05B_SHAPE, TINY_SHAPE, PeakMeter  # noqa: E402  (same folder)

GOAL = 2.0
TEMPERATURE, TOP_P = 0.6, 0.95


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prompt_ids(length: int, vocab_size: int):
    import torch

    return torch.randint(0, vocab_size, (length,), generator=torch.Generator().manual_seed(length))


def write_checkpoint(folder: str, shape: dict, logit_scale: float) -> None:
    """The random Qwen2 checkpoint of the sampler benchmarks (seed 0; final RMSNorm x logit_scale)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**shape, bos_token_id=None, eos_token_id=None)).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(logit_scale)
    model.save_pretrained(folder)


def sampler_for(side: str, checkpoint: str, warm: list[int]):
    """generate(ids, n, new_tokens) -> the new-token count of each of n continuations of the prompt ids
    (a list of ints), for side "ours" (`model.sample`) or "transformers" (`generate` with
    num_return_sequences); bench/peers/peer_cases.py runs the same two."""
    import torch

    if side == "ours":
        import thought_anchors as ta

        model = ta.Model.load(checkpoint, dtype="float32")
        model.logits(warm)  # makes every page of the memory-mapped weights resident

        def generate(ids, n, new_tokens):
            samples = model.sample(ids, n, temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=new_tokens, seed=0)
            return [len(s.ids) for s in samples]
        return generate
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()

    def generate(ids, n, new_tokens):
        ids = torch.tensor(ids)
        with torch.no_grad():
            out = model.generate(ids[None], attention_mask=torch.ones(1, ids.numel(), dtype=torch.long),
                                 do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=None,
                                 num_return_sequences=n, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0)
        return [out.shape[1] - ids.numel()] * out.shape[0]
    return generate


def run_case(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    shape = TINY_SHAPE if args.tiny else QWEN2_05B_SHAPE
    if args.embedded:
        with open(os.path.join(args.checkpoint, "config.json")) as f:
            shape = {"vocab_size": json.load(f)["vocab_size"]}
    if args.case == "checkpoint":
        write_checkpoint(args.checkpoint, shape, args.logit_scale)
        return {}

    prompt = prompt_ids(args.prefix, shape["vocab_size"]).tolist()
    warm = prompt[:16]
    generate = sampler_for(args.case, args.checkpoint, warm)
    generate(warm, 2, 4)
    meter = PeakMeter()
    meter.start()
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    lengths = generate(prompt, args.rollouts, args.new_tokens)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    if len(lengths) != args.rollouts or any(length != args.new_tokens for length in lengths):
        return {"error": f"{args.case}: expected {args.rollouts} x {args.new_tokens} tokens, got {lengths[:5]}..."}
    return {"seconds": wall, "cpu_seconds": cpu, "extra_mib": meter.extra_mib(),
            "tokens": args.rollouts * args.new_tokens}


def child(args, folder: str, case: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--case", case, "--checkpoint", folder,
               "--threads", str(args.threads), "--rollouts", str(args.rollouts), "--new-tokens",
               str(args.new_tokens), "--prefix", str(args.prefix), "--logit-scale", str(args.logit_scale)]
    if args.tiny:
        command.append("--tiny")
    if args.embedded:
        command.append("--embedded")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
    print(f"[bench] {case} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        return {"error": f"{case} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefix", type=int, default=512)
    parser.add_argument("--logit-scale", type=float, default=20.0)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer toy of the same family (smoke run)")
    parser.add_argument("--embedded", action="store_true", help="the embedded model (models/tiny-reasoner)")
    parser.add_argument("--cases", nargs="+", choices=["ours", "transformers"], default=["ours", "transformers"],
                        help="which sides to run (default both; the comparison needs both)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="anchors-bench-sampler-") as folder:
        if args.embedded:
            folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                                  "tiny-reasoner")
        else:
            made = child(args, folder, "checkpoint")
            if "error" in made:
                print(made["error"], file=sys.stderr)
                return 1
        results = {case: child(args, folder, case) for case in args.cases}

    import torch
    import transformers

    shape = ("the embedded model" if args.embedded else
             "random model (2-layer toy)" if args.tiny else "random model (Qwen2-0.5B shape)")
    print(f"\n{args.rollouts} rollouts x {args.new_tokens} new tokens from a shared {args.prefix}-token prompt, "
          f"{shape}, float32, {args.threads} threads, T {TEMPERATURE}, top-p {TOP_P}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}\n")
    print("| sampler | wall s | tokens/s | rollouts/s | CPU s | extra MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    names = {"ours": "thought_anchors `model.sample`", "transformers": "transformers `generate(num_return_sequences)`"}
    for case, result in results.items():
        if "error" in result:
            print(f"| {names[case]} | error | | | | |")
            continue
        print(f"| {names[case]} | {result['seconds']:.2f} | {result['tokens'] / result['seconds']:.1f} | "
              f"{args.rollouts / result['seconds']:.2f} | {result['cpu_seconds']:.1f} | {result['extra_mib']:.0f} |")
    errors = [r["error"] for r in results.values() if "error" in r]
    for error in errors:
        print(f"\nerror: {error}")
    if errors:
        return 1
    if len(results) < 2:
        return 0
    ours, theirs = results["ours"], results["transformers"]
    speedup = theirs["seconds"] / ours["seconds"]
    memory = theirs["extra_mib"] / max(ours["extra_mib"], 1.0)
    verdict = "met" if speedup >= GOAL else "NOT met"
    print(f"\ntokens/s: {speedup:.2f}x transformers (goal >= {GOAL:.0f}x: {verdict}); "
          f"CPU time {theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}x less; extra memory {memory:.1f}x less")
    return 0


if __name__ == "__main__":
    sys.exit(main())
