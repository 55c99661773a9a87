"""White-box methods on CPU: thought_anchors against transformers-based baselines.

A random model with the Qwen2-0.5B shape (hidden 896, 24 layers, 14 query / 2
key-value heads, intermediate 4864, vocabulary 151936, tied embeddings) is
written to a temporary folder with `save_pretrained`, its final RMSNorm weight
multiplied by --logit-scale (default 20) so that next-token distributions are
peaked like a trained model's (median top-1 probability about 0.9 at
temperature 0.6, a handful of tokens to reach top-p 0.9999; unscaled, every
position hits the 100-token cap and near-ties at rank 100 make the kept sets of
the suppression rule depend on float rounding). The scale changes the logits
only, not the attention. Inputs are random token ids: a prompt of
min(64, T/8) tokens that belongs to no sentence, then contiguous sentences of
about 40 tokens (jittered, fixed seeds). float32 everywhere, no KV cache, the
same number of intra-op threads for both sides.

Three tables, one run:

1. Sentence attention (every layer and head, S x S block means) at T = --lengths:
   `ta.sentence_attention` against transformers' eager attention. The baseline is
   `output_attentions=True` with the block means computed from the returned
   T x T weights ("full") while (L + 3) * H * T^2 * 4 bytes fit under
   --memory-limit-gib; beyond that the careful user's variant ("careful"): an
   attention function registered with transformers that runs transformers'
   eager attention and reduces each layer's weights to block means at once.
   Both baselines ask for the last position's logits only (logits_to_keep=1).
   Goal: at the largest length (4096 by default) at most 1/5 of the baseline's
   extra memory, and no slower. The two results are compared at the smallest T.
2. Attention suppression matrix (T = --suppression-length, --suppression-sentences
   sentences): `ta.suppression_matrix` (defaults) against the reference
   procedure: one base eager forward pass and one full eager forward pass per
   sentence with an attention function that sets the sentence's key columns to
   finfo(float32).min before the softmax, then per position the reference KL
   rule (temperature 0.6, top-p 0.9999 by full sort, at most 100 kept, -1e9
   fill over the union of kept sets, log(KL + 1e-9)) and sentence means.
   Goal: at least 2x faster. The two raw matrices S[j, i] are compared.
   Also its floor: 1 + sum_i (T - s_i) / T forward passes with logits (an exact
   suppressed pass recomputes from the sentence's first token s_i on), against
   ours in passes (its seconds / a `model.logits` call of the same process,
   median of at least 3).
   Goal (issue 16): at most 1.3x the floor. --skip-reference runs ours alone.
3. WAAD/FAI extra cost: `ta.attention_rhythm(model, ids)` against a plain forward
   pass of ours at T = --rhythm-lengths: `model.hidden_states(ids)` (the same
   pass without the vocabulary projection, which attention_rhythm does not need)
   and, for information, `model.logits(ids)` (all-position logits).
   Goal: overhead at most 20 %.

Every case runs in a fresh child process (this script with --case), so that its
peak resident memory can be read: "extra MiB" = peak RSS during the timed runs
(getrusage ru_maxrss, its high-water mark reset through /proc/self/clear_refs
right after loading) minus the RSS right after loading the model and one
warm-up call on a short input (for thought_anchors also one `model.logits` call, which
makes every page of its memory-mapped weights resident, as transformers' copies are).
Times are medians of --repeats runs.

    .venv/bin/python bench/bench_whitebox.py --threads 2               # the full run (roughly 15 min on 2 cores)
    .venv/bin/python bench/bench_whitebox.py --quick                   # smoke run, small T
    .venv/bin/python bench/bench_whitebox.py --tables suppression --repeats 3

Prints Markdown tables (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

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
# --tiny: a 2-layer toy of the same family, to smoke-test every code path in seconds.
TINY_SHAPE = dict(QWEN2_05B_SHAPE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, vocab_size=1024)

SENTENCE_TOKENS = 40                                # table 1: about this many tokens per sentence
TEMPERATURE, TOP_P, MAX_KEPT, FILL = 0.6, 0.9999, 100, -1e9  # the suppression rule's defaults
AGREEMENT_TOLERANCE = 1e-4
MEMORY_GOAL, SUPPRESSION_GOAL, RHYTHM_GOAL = 5.0, 2.0, 0.20
TABLES = ("attention", "suppression", "rhythm")
FLOOR_GOAL = 1.3  # table 2: at most this many times the floor's forward passes (issue 16)


# ---------------------------------------------------------------------------
# Inputs (identical in every process: fixed seeds)
# ---------------------------------------------------------------------------

def prompt_tokens(tokens: int) -> int:
    return min(64, tokens // 8)


def sentence_count(tokens: int) -> int:
    return max(1, round((tokens - prompt_tokens(tokens)) / SENTENCE_TOKENS))


def make_input(tokens: int, sentences: int, vocab_size: int):
    """Random ids [T] and `sentences` contiguous spans over [prompt, T), lengths jittered by up to ±25 %."""
    import torch

    prompt = prompt_tokens(tokens)
    if tokens - prompt < sentences:
        raise SystemExit(f"{tokens} tokens cannot hold {sentences} sentences after a {prompt}-token prompt")
    rng = random.Random(1000 + tokens * 7 + sentences)
    step = (tokens - prompt) / sentences
    bounds = [prompt]
    for k in range(1, sentences):
        cut = prompt + round(k * step + rng.uniform(-0.25, 0.25) * step)
        bounds.append(min(max(cut, bounds[-1] + 1), tokens - (sentences - k)))
    bounds.append(tokens)
    spans = [(bounds[k], bounds[k + 1]) for k in range(sentences)]
    generator = torch.Generator().manual_seed(tokens)
    ids = torch.randint(0, vocab_size, (tokens,), generator=generator)
    return ids, spans


def onehot_of(spans, tokens: int):
    """[T, S] float32 sentence membership and [S, S] 1 / (|i| |j|)."""
    import torch

    onehot = torch.zeros(tokens, len(spans))
    for index, (begin, end) in enumerate(spans):
        onehot[begin:end, index] = 1.0
    sizes = onehot.sum(0)
    return onehot, 1.0 / (sizes[:, None] * sizes[None, :])


def block_means(weights, onehot, inverse_sizes):
    """[B=1, H, T, T] attention weights -> [H, S, S] block means (all |i|·|j| pairs, masked ones as 0)."""
    pooled = onehot.T @ (weights[0] @ onehot)  # [H, S, S] sums
    return pooled * inverse_sizes


# ---------------------------------------------------------------------------
# Transformers-side attention functions (registered by name, see register_attention)
# ---------------------------------------------------------------------------

POOLING_ATTENTION = "anchors_bench_pooling"
SUPPRESSING_ATTENTION = "anchors_bench_suppressing"
_state = {"onehot": None, "inverse_sizes": None, "pooled": [], "span": None, "invisible": None}


def _pooling_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' eager attention; its T×T weights are reduced to block means at once and dropped."""
    from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

    output, weights = eager_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                              dropout=dropout, **kwargs)
    _state["pooled"].append(block_means(weights, _state["onehot"], _state["inverse_sizes"]))
    del weights
    return output, None


def _suppressing_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention; the suppressed sentence's key columns get finfo.min before the softmax.

    Causally invisible keys get -inf (probability exactly 0), so a row whose every visible key is
    suppressed attends uniformly over its visible keys, as thought_anchors' masking rule says. The
    inputs here always have a prompt before the first sentence, so that case does not arise.
    """
    import torch
    from transformers.models.qwen2.modeling_qwen2 import repeat_kv

    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)
    tokens = scores.shape[-1]
    if scores.shape[-2] != tokens:
        raise RuntimeError("the suppression reference runs full sequences without a cache")
    if _state["span"] is not None:
        begin, end = _state["span"]
        scores[..., begin:end] = torch.finfo(scores.dtype).min
    if _state["invisible"] is None or _state["invisible"].shape[0] != tokens:
        _state["invisible"] = torch.ones(tokens, tokens, dtype=torch.bool).triu_(1)
    scores.masked_fill_(_state["invisible"], -math.inf)
    weights = torch.softmax(scores, dim=-1)
    del scores
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(POOLING_ATTENTION, _pooling_attention)
    AttentionMaskInterface.register(POOLING_ATTENTION, eager_mask)  # the float causal mask eager attention adds
    AttentionInterface.register(SUPPRESSING_ATTENTION, _suppressing_attention)  # builds its own causal mask


def reference_log_kl(base, suppressed):
    """Per position log(KL(base ‖ suppressed) + 1e-9) by the reference rule, vectorised over positions.

    base: (logits [T, V], kept ids [T, K], kept flags [T, K]) from kept_sets; suppressed: the same.
    Over the union of both kept sets, a side's logit for a token it did not keep is -1e9; KL of the
    log-softmax at the temperature over that union (float64), clipped at >= 0.
    """
    import torch

    (base_logits, base_ids, base_keep), (supp_logits, supp_ids, supp_keep) = base, suppressed
    candidates = torch.cat([base_ids, supp_ids], dim=1)                                  # [T, 2K]
    in_base = ((candidates[:, :, None] == base_ids[:, None, :]) & base_keep[:, None, :]).any(-1)
    in_supp = ((candidates[:, :, None] == supp_ids[:, None, :]) & supp_keep[:, None, :]).any(-1)
    width = base_ids.shape[1]
    first_copy = torch.ones_like(in_base)  # a token listed by both sides counts once (its first copy)
    first_copy[:, width:] = ~(candidates[:, width:, None] == base_ids[:, None, :]).any(-1)
    union = (in_base | in_supp) & first_copy
    sides = []
    for logits, kept in ((base_logits, in_base), (supp_logits, in_supp)):
        values = torch.where(kept, logits.gather(1, candidates).double(), torch.full((), FILL, dtype=torch.float64))
        values = values.masked_fill(~union, -math.inf)
        sides.append(torch.log_softmax(values / TEMPERATURE, dim=-1))
    terms = sides[0].exp() * (sides[0] - sides[1])
    kl = torch.where(union, terms, torch.zeros((), dtype=torch.float64)).sum(-1).clamp(min=0.0)
    return torch.log(kl + 1e-9)


def kept_sets(logits):
    """The reference's kept set per position: full sort of the tempered probabilities, the first k
    where the cumulative sum reaches top_p, plus one, capped at 100, at least 1."""
    import torch

    probs = torch.softmax(logits / TEMPERATURE, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    del probs
    cumulative = sorted_probs.cumsum(dim=-1)
    del sorted_probs
    k = ((cumulative < TOP_P).sum(-1) + 1).clamp(1, MAX_KEPT)
    del cumulative
    width = min(MAX_KEPT, logits.shape[-1])
    ids = order[:, :width].clone()
    del order
    keep = torch.arange(width)[None, :] < k[:, None]
    return logits, ids, keep


# ---------------------------------------------------------------------------
# Child process: one case, one JSON result
# ---------------------------------------------------------------------------

def _status_kib(field: str):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMeter:
    """Extra resident memory of what runs after start(): peak RSS minus the RSS at start()."""

    def start(self) -> None:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as handle:  # resets the high-water mark (Linux)
                handle.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.start_kib = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def extra_mib(self) -> float:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return (peak_kib - self.start_kib) / 1024.0


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def missing_api(ta, name: str) -> str:
    return (f"thought_anchors {getattr(ta, '__version__', '?')} ({os.path.dirname(ta.__file__)}) has no "
            f"`{name}` yet: build and install the Python bindings first")


def run_case(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    shape = TINY_SHAPE if args.tiny else QWEN2_05B_SHAPE
    if args.case == "checkpoint":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(0)
        model = Qwen2ForCausalLM(Qwen2Config(**shape)).eval()  # transformers' random init
        with torch.no_grad():
            model.model.norm.weight.mul_(args.logit_scale)
        model.save_pretrained(args.checkpoint)
        return {}

    with open(os.path.join(args.checkpoint, "config.json")) as handle:
        vocab_size = json.load(handle)["vocab_size"]
    side = "transformers" if args.case.endswith("-transformers") else "ours"
    if side == "ours":
        import thought_anchors as ta

        needed = {"attention-ours": "sentence_attention", "suppression-ours": "suppression_matrix",
                  "rhythm": "attention_rhythm"}[args.case]
        if not hasattr(ta, needed):
            return {"error": missing_api(ta, needed)}
        model = ta.Model.load(args.checkpoint, dtype="float32")
    else:
        from transformers import AutoModelForCausalLM

        register_attention()
        implementation = {"attention-transformers": "eager" if args.variant == "full" else POOLING_ATTENTION,
                          "suppression-transformers": SUPPRESSING_ATTENTION}[args.case]
        model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32,
                                                     attn_implementation=implementation).eval()

    if args.case == "rhythm":  # time only: the two calls alternate
        rows = []
        warm_ids, _ = make_input(64, 1, vocab_size)
        model.logits(warm_ids)
        model.hidden_states(warm_ids)
        ta.attention_rhythm(model, warm_ids.tolist())
        for tokens in args.lengths:
            ids, _ = make_input(tokens, 1, vocab_size)
            id_list = ids.tolist()
            forward, hidden, rhythm = [], [], []
            for _ in range(args.repeats):
                forward.append(timed(lambda: model.logits(ids))[0])
                gc.collect()
                hidden.append(timed(lambda: model.hidden_states(ids))[0])
                gc.collect()
                rhythm.append(timed(lambda: ta.attention_rhythm(model, id_list))[0])
                gc.collect()
            rows.append({"tokens": tokens, "forward_s": statistics.median(forward),
                         "hidden_s": statistics.median(hidden), "rhythm_s": statistics.median(rhythm)})
        return {"rows": rows}

    tokens = args.length
    sentences = args.sentences or sentence_count(tokens)
    ids, spans = make_input(tokens, sentences, vocab_size)
    if args.case == "attention-ours":
        def compute(ids, spans):
            return ta.sentence_attention(model, ids.tolist(), spans)
    elif args.case == "suppression-ours":
        def compute(ids, spans):
            return ta.suppression_matrix(model, ids.tolist(), spans)
    elif args.case == "attention-transformers":
        def compute(ids, spans):
            onehot, inverse_sizes = onehot_of(spans, len(ids))
            with torch.no_grad():
                if args.variant == "full":
                    output = model(ids[None], output_attentions=True, logits_to_keep=1)
                    return torch.stack([block_means(a, onehot, inverse_sizes) for a in output.attentions])
                _state.update(onehot=onehot, inverse_sizes=inverse_sizes, pooled=[])
                model(ids[None], logits_to_keep=1)
                pooled, _state["pooled"] = _state["pooled"], []
                return torch.stack(pooled)
    else:  # suppression-transformers: the reference procedure
        def compute(ids, spans):
            x = ids[None]
            with torch.no_grad():
                _state["span"] = None
                base = kept_sets(model(x).logits[0])
                matrix = torch.empty(len(spans), len(spans), dtype=torch.float64)
                for i, span in enumerate(spans):
                    _state["span"] = span
                    values = reference_log_kl(base, kept_sets(model(x).logits[0]))
                    for j, (begin, end) in enumerate(spans):
                        matrix[j, i] = values[begin:end].mean()
                _state["span"] = None
            return matrix

    # Warm-up on a short input (first touch of the weights, allocator, thread pool), then measure.
    warm_tokens = min(tokens, 128)
    warm_ids, warm_spans = make_input(warm_tokens, min(2, warm_tokens - prompt_tokens(warm_tokens)), vocab_size)
    compute(warm_ids, warm_spans)
    if args.case.endswith("-ours"):
        # thought_anchors maps the safetensors file (zero-copy float32 weights): a pass that
        # looks up some embedding rows faults in pages of the file (clean page cache, but RSS
        # counts them), up to the whole 544 MB tied embedding. transformers copies every weight
        # into memory at load, so make all of ours resident too before the baseline RSS is taken:
        # the lm_head product reads the whole (tied) embedding.
        model.logits(warm_ids)
    meter = PeakMeter()
    meter.start()
    rss_after_load = meter.start_kib / 1024.0
    times = []
    result = None
    for _ in range(args.repeats):
        result = None
        gc.collect()
        seconds, result = timed(lambda: compute(ids, spans))
        times.append(seconds)
    out = {"seconds": statistics.median(times), "times": times, "extra_mib": meter.extra_mib(),
           "rss_after_load_mib": rss_after_load, "peak_reset": meter.reset, "sentences": sentences,
           "variant": args.variant}
    if args.case == "suppression-ours":
        # The floor: an exact suppressed pass recomputes every position from the sentence's
        # first token on, so 1 + sum_i (T - s_i) / T forward passes with logits, timed here.
        out["floor_passes"] = 1 + sum(tokens - begin for begin, _ in spans) / tokens
        forwards = []
        for _ in range(max(3, args.repeats)):  # one call is noisy on a shared machine: median of >= 3
            gc.collect()
            forwards.append(timed(lambda: model.logits(ids))[0])
        out["forward_s"] = statistics.median(forwards)
    if args.save:
        torch.save(result.detach().cpu(), args.save)
    return out


# ---------------------------------------------------------------------------
# Parent process: spawn the cases, print the tables
# ---------------------------------------------------------------------------

def mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 16.0


class Runner:
    def __init__(self, args, folder: str):
        self.args, self.folder, self.count = args, folder, 0

    def __call__(self, case: str, *extra: str, save: bool = False) -> dict:
        """Runs one case in a fresh Python process; returns its JSON (or {"error": ...})."""
        self.count += 1
        result_path = os.path.join(self.folder, f"result-{self.count}.json")
        command = [sys.executable, os.path.abspath(__file__), "--case", case, "--checkpoint", self.args.checkpoint,
                   "--threads", str(self.args.threads), "--result", result_path,
                   "--logit-scale", str(self.args.logit_scale), "--repeats", str(self.args.repeats), *extra]
        if self.args.tiny:
            command.append("--tiny")
        saved = os.path.join(self.folder, f"tensor-{self.count}.pt") if save else None
        if saved:
            command += ["--save", saved]
        env = dict(os.environ, OMP_NUM_THREADS=str(self.args.threads), MKL_NUM_THREADS=str(self.args.threads),
                   TOKENIZERS_PARALLELISM="false")
        label = " ".join([case, *extra])
        log(f"  {label} ...")
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if completed.returncode != 0:
            tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
            code = completed.returncode
            reason = "killed (out of memory?)" if code in (-9, 137) else f"exit {code}"
            log(f"  {label}: FAILED, {reason}:\n{tail}")
            return {"error": f"{case} failed ({reason})"}
        with open(result_path) as handle:
            result = json.load(handle)
        if "error" in result:
            log(f"  {label}: {result['error']}")
        else:
            log(f"  {label}: done in {elapsed:.0f} s")
        if saved:
            result["saved"] = saved
        return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + suffix


def mib(result: dict) -> str:
    value = result.get("extra_mib")
    return fmt(None if value is None else max(0.0, value), ".0f")  # RSS jitter can dip below the start


def verdict(worst) -> str:
    if worst is None:
        return "not checked"
    return "agree" if worst < AGREEMENT_TOLERANCE else "DISAGREE"


def error_notes(lines, *results) -> None:
    for result in results:
        note = f"n/a: {result['error']}" if "error" in result else None
        if note and note not in lines:
            lines.append(note)


def max_abs_diff(path_a, path_b):
    import torch

    a, b = torch.load(path_a).double(), torch.load(path_b).double()
    if a.shape != b.shape:
        return None, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = (a - b).abs()
    both_nan = a.isnan() & b.isnan()
    diff = torch.where(both_nan, torch.zeros_like(diff), diff)
    worst = float(diff.nan_to_num(nan=math.inf).max())
    over = int((diff.nan_to_num(nan=math.inf) > AGREEMENT_TOLERANCE).sum())
    return worst, f"{over} of {diff.numel()} entries above {AGREEMENT_TOLERANCE:g}"


# Each table_* runs its child processes and returns a function that writes the table's lines. The
# parent imports torch (for the agreement checks) only after the last child has run, so that no child
# inherits a large parent's memory high-water mark through exec.

def table_attention(args, run):
    with open(os.path.join(args.checkpoint, "config.json")) as handle:
        config = json.load(handle)
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    rows, saved = [], None
    for index, tokens in enumerate(sorted(args.lengths)):
        full_bytes = (layers + 3) * heads * tokens**2 * 4
        variant = args.baseline
        if variant == "auto":
            variant = "full" if full_bytes <= args.memory_limit_gib * 2**30 else "careful"
        compare = index == 0
        ours = run("attention-ours", "--length", str(tokens), save=compare)
        base = run("attention-transformers", "--length", str(tokens), "--variant", variant, save=compare)
        if compare and "saved" in ours and "saved" in base:
            saved = (tokens, variant, ours["saved"], base["saved"])
        rows.append((tokens, variant, ours, base))
    return lambda lines: render_attention(args, rows, saved, lines)


def render_attention(args, rows, saved, lines):
    goal_tokens = max(args.lengths)
    lines.append("### 1. Sentence attention, all layers and heads (block means S x S)\n")
    lines.append("| tokens | sentences | baseline | thought_anchors s | transformers s | speed-up | "
                 "thought_anchors extra MiB | transformers extra MiB | memory: transformers / ours | goal |")
    lines.append("|---:|---:|:--|---:|---:|---:|---:|---:|---:|:--|")
    not_reset = False
    for tokens, variant, ours, base in rows:
        ok = "error" not in ours and "error" not in base
        speedup = base["seconds"] / ours["seconds"] if ok else None
        ratio = max(base["extra_mib"], 0.0) / max(ours["extra_mib"], 1.0) if ok else None
        goal = "n/a"
        if ok:
            met = ratio >= MEMORY_GOAL and speedup >= 1.0
            goal = ("met" if met else "not met") if tokens == goal_tokens else ("(yes)" if met else "(no)")
        not_reset |= not (ours.get("peak_reset", True) and base.get("peak_reset", True))
        lines.append(f"| {tokens} | {ours.get('sentences', base.get('sentences', sentence_count(tokens)))} | "
                     f"{variant} | {fmt(ours.get('seconds'), '.2f')} | {fmt(base.get('seconds'), '.2f')} | "
                     f"{fmt(speedup, '.2f', 'x')} | {mib(ours)} | {mib(base)} | {fmt(ratio, '.1f', 'x')} | {goal} |")
    lines.append("")
    lines.append("extra MiB: peak RSS during the computation (getrusage ru_maxrss, high-water mark reset right "
                 "after loading) minus the RSS after loading the model and one warm-up call; one fresh process "
                 "per cell (below 1 MiB counts as 1 in the ratio). baseline: full = eager attention with "
                 "output_attentions=True, block means from the returned weights; careful = an attention function "
                 "that runs transformers' eager attention and reduces each layer's T x T weights to block means at "
                 f"once (used where (L+3)*H*T^2*4 bytes exceed {args.memory_limit_gib:.1f} GiB). Goal at "
                 f"T={goal_tokens}: memory transformers / ours >= {MEMORY_GOAL:g}x and speed-up >= 1 (other rows "
                 "in brackets, for information).")
    for _, _, ours, base in rows:
        error_notes(lines, ours, base)
    if not_reset:
        lines.append("NOTE: /proc/self/clear_refs was not writable, so the peak also covers loading the model: "
                     "where loading peaked higher than the computation, extra MiB is overestimated.")
    if saved:
        tokens, variant, ours_path, base_path = saved
        worst, detail = max_abs_diff(ours_path, base_path)
        lines.append(f"Check at T={tokens} ({variant} baseline): max |thought_anchors - transformers| over "
                     f"all block means = {fmt(worst, '.2e')} ({detail}): {verdict(worst)}.")
    lines.append("")


def table_suppression(args, run):
    extra = ("--length", str(args.suppression_length), "--sentences", str(args.suppression_sentences))
    ours = run("suppression-ours", *extra, save=True)
    base = (run("suppression-transformers", *extra, save=True) if not args.skip_reference
            else {"error": "not run (--skip-reference)"})
    return lambda lines: render_suppression(args, ours, base, lines)


def render_suppression(args, ours, base, lines):
    tokens, sentences = args.suppression_length, args.suppression_sentences
    ok = "error" not in ours and "error" not in base
    worst, detail = max_abs_diff(ours["saved"], base["saved"]) if ok else (None, "not run")
    speedup = base["seconds"] / ours["seconds"] if ok else None
    goal = ("met" if speedup >= SUPPRESSION_GOAL else "not met") if ok else "n/a"
    passes = ours["seconds"] / ours["forward_s"] if "forward_s" in ours else None
    to_floor = passes / ours["floor_passes"] if passes else None
    floor_goal = "n/a" if to_floor is None else ("met" if to_floor <= FLOOR_GOAL else "not met")
    lines.append("### 2. Attention suppression matrix (raw S[j, i], every sentence suppressed once)\n")
    lines.append("| tokens | sentences | thought_anchors s | reference s | speed-up | thought_anchors extra MiB | "
                 "reference extra MiB | max abs diff | goal (>= 2x) |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|:--|")
    lines.append(f"| {tokens} | {sentences} | {fmt(ours.get('seconds'), '.1f')} | "
                 f"{fmt(base.get('seconds'), '.1f')} | "
                 f"{fmt(speedup, '.2f', 'x')} | {mib(ours)} | {mib(base)} | {fmt(worst, '.2e')} | {goal} |")
    lines.append("")
    lines.append("| tokens | sentences | forward pass with logits s | floor (passes) | thought_anchors (passes) | "
                 f"ratio to the floor | goal (<= {FLOOR_GOAL}x) |")
    lines.append("|---:|---:|---:|---:|---:|---:|:--|")
    lines.append(f"| {tokens} | {sentences} | {fmt(ours.get('forward_s'), '.2f')} | "
                 f"{fmt(ours.get('floor_passes'), '.1f')} | {fmt(passes, '.1f')} | {fmt(to_floor, '.2f', 'x')} | "
                 f"{floor_goal} |")
    lines.append("")
    lines.append("Floor: an exact suppressed pass recomputes every position from the sentence's first token s_i "
                 "on, so the matrix needs at least 1 + sum_i (T - s_i) / T forward passes with logits; "
                 "thought_anchors (passes) = its seconds / a `model.logits(ids)` call timed in the same process "
                 "(median of at least 3).")
    lines.append("")
    lines.append(f"thought_anchors: ta.suppression_matrix with its defaults (temperature {TEMPERATURE}, top_p "
                 f"{TOP_P}, max_kept {MAX_KEPT}, batch_lanes 4, reuse_prefix). reference: transformers, 1 + "
                 f"{sentences} full eager forward passes with an attention function setting the sentence's key "
                 "columns to finfo(float32).min before the softmax, full sort of the tempered probabilities, -1e9 "
                 "fill over the union of kept sets, KL in float64, sentence means. extra MiB as in table 1.")
    error_notes(lines, ours, base)
    lines.append(f"Check: max |thought_anchors - reference| = {fmt(worst, '.2e')} ({detail}): {verdict(worst)}. "
                 "(Isolated larger differences can come from a token whose cumulative probability sits at the "
                 "top-p boundary, where float rounding of two implementations decides whether it is kept.)")
    lines.append("")


def table_rhythm(args, run):
    result = run("rhythm", "--lengths", *map(str, args.rhythm_lengths), "--repeats", str(args.rhythm_repeats))
    return lambda lines: render_rhythm(args, result, lines)


def render_rhythm(args, result, lines):
    lines.append("### 3. WAAD/FAI (attention_rhythm) extra cost over a plain forward pass\n")
    lines.append("| tokens | forward without lm_head s | forward with logits s | attention_rhythm s | "
                 "overhead vs forward without lm_head | goal (<= 20 %) |")
    lines.append("|---:|---:|---:|---:|---:|:--|")
    for row in result.get("rows", [{"tokens": t} for t in args.rhythm_lengths]):
        overhead = row["rhythm_s"] / row["hidden_s"] - 1.0 if "rhythm_s" in row else None
        goal = "n/a" if overhead is None else ("met" if overhead <= RHYTHM_GOAL else "not met")
        lines.append(f"| {row['tokens']} | {fmt(row.get('hidden_s'), '.2f')} | {fmt(row.get('forward_s'), '.2f')} | "
                     f"{fmt(row.get('rhythm_s'), '.2f')} | "
                     f"{fmt(None if overhead is None else 100 * overhead, '+.1f', ' %')} | {goal} |")
    lines.append("")
    error_notes(lines, result)
    lines.append(f"Both thought_anchors, same process, alternating, median of {args.rhythm_repeats}: "
                 "ta.attention_rhythm(model, ids) (defaults: middle third of the layers, W=10, FAI window "
                 "[10, 100]) vs model.hidden_states(ids) (the same forward pass without the vocabulary "
                 "projection, which attention_rhythm skips too) and model.logits(ids) (with all-position logits, "
                 "as in bench_forward.py).")
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both sides (default 2)")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES), help="which tables to run")
    parser.add_argument("--lengths", type=int, nargs="+", help="table 1 lengths (default 1024 2048 4096)")
    parser.add_argument("--suppression-length", type=int, help="table 2 length (default 1024)")
    parser.add_argument("--suppression-sentences", type=int, help="table 2 sentences (default 30)")
    parser.add_argument("--skip-reference", action="store_true",
                        help="table 2: ours and its floor only, without the (slow) reference procedure")
    parser.add_argument("--rhythm-lengths", type=int, nargs="+", help="table 3 lengths (default 1024 2048)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per cell of tables 1 and 2 (median)")
    parser.add_argument("--rhythm-repeats", type=int, default=3, help="timed runs per cell of table 3 (median)")
    parser.add_argument("--memory-limit-gib", type=float, default=None,
                        help="largest estimated footprint of the full output_attentions baseline "
                             "(default 60%% of MemTotal); beyond it the careful variant runs")
    parser.add_argument("--baseline", choices=["auto", "full", "careful"], default="auto",
                        help="table 1 baseline variant (default: full where it fits, else careful)")
    parser.add_argument("--logit-scale", type=float, default=None,
                        help="multiplies the random model's final RMSNorm weight, for peaked next-token "
                             "distributions (default 20; 5 with --tiny)")
    parser.add_argument("--checkpoint", help="use this Qwen2 checkpoint folder instead of writing a random one")
    parser.add_argument("--quick", action="store_true", help="smoke run: T = 256 / 512, 6 suppressed sentences")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # 2-layer toy model, T = 128
    # Child-process arguments (one case per process).
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sentences", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="careful", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.logit_scale is None:
        args.logit_scale = 5.0 if args.tiny else 20.0
    if args.case:
        result = run_case(args)
        with open(args.result, "w") as handle:
            json.dump(result, handle)
        return

    if args.tiny:
        defaults = dict(lengths=[128], suppression_length=128, suppression_sentences=3, rhythm_lengths=[128])
    elif args.quick:
        defaults = dict(lengths=[256, 512], suppression_length=256, suppression_sentences=6,
                        rhythm_lengths=[256, 512])
    else:
        defaults = dict(lengths=[1024, 2048, 4096], suppression_length=1024, suppression_sentences=30,
                        rhythm_lengths=[1024, 2048])
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.memory_limit_gib is None:
        args.memory_limit_gib = 0.6 * mem_total_gib()
    if args.threads < 1 or args.repeats < 1 or args.rhythm_repeats < 1:
        parser.error("--threads, --repeats and --rhythm-repeats must be >= 1")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anchors-bench-whitebox-") as folder:
        given = args.checkpoint
        if given:
            if not os.path.isfile(os.path.join(given, "config.json")):
                parser.error(f"--checkpoint {given}: no config.json there")
            args.checkpoint = os.path.abspath(given)
        else:
            args.checkpoint = os.path.join(folder, "model")
        run = Runner(args, folder)
        if not given:
            log(f"writing a random {'tiny' if args.tiny else 'Qwen2-0.5B-shaped'} checkpoint to {args.checkpoint}")
            if "error" in run("checkpoint"):
                raise SystemExit("could not write the random checkpoint (see above)")

        renders = []
        for name, table in (("attention", table_attention), ("suppression", table_suppression),
                            ("rhythm", table_rhythm)):
            if name in args.tables:
                log(f"[{name}]")
                renders.append(table(args, run))

        import torch
        import transformers

        lines = [f"CPU, float32, {args.threads} threads; transformers {transformers.__version__}, "
                 f"torch {torch.__version__}; model: "
                 + (f"{given}" if given else
                    f"random {'2-layer toy' if args.tiny else 'Qwen2-0.5B-shaped (494M parameters)'}, final norm "
                    f"x {args.logit_scale:g}") + f"; median of {args.repeats} run(s) per cell.", ""]
        for render in renders:
            render(lines)

    log(f"total {time.perf_counter() - started:.0f} s")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
