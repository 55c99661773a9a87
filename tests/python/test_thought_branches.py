"""The Thought Branches methods (docs/thought-branches.md) against slow references written here.

Resilience: a scripted, deterministic provider (its continuation is a function of the prompt text and
the lane) and a word-overlap similarity make every chain computable by hand; the reference below
walks the definition of docs/thought-branches.md and must give the same chains, rates and
counterfactual++ for a binary outcome (\\boxed{} answers against a target) and a categorical one (a
Python outcome with three labels and no target: the KL form). On the embedded model a SIGKILLed run
resumes to the same files as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import thought_anchors as ta
from conftest import LoopbackHandler, loopback

PROBLEM = "What is 2 + 3?"
SOLUTION = ("I need to add 2 and 3. First, I start from 2. Then I count up three steps. "
            "So 2 + 3 = 5. The answer is \\boxed{5}.")
CONTINUATIONS = [
    " First, I start from 2. Then 2 + 3 = 5. So \\boxed{5}.",
    " Let me think again. I begin at 2 then. So \\boxed{6}.",
    " Hmm, I count up three steps. So \\boxed{7}.",
    " Okay. I need to add 2 and 3 here. Then \\boxed{5}.",
    " So 2 + 3 = 5. Done, \\boxed{5}.",
    " I will guess now. \\boxed{6}.",
]


def script(prompt_text: str, lane: int) -> str:
    # Lanes 0 and 3 right after the first sentence restate the second one first, every time: those
    # chains cut at once, get the same prompt again and persist until max_iterations.
    if prompt_text.rstrip().endswith("add 2 and 3.") and lane % 3 == 0:
        return " First, I start from 2. Hmm, \\boxed{5}."
    digest = hashlib.sha256(f"{prompt_text}|{lane}".encode()).digest()
    return CONTINUATIONS[digest[0] % len(CONTINUATIONS)]


class Scripted(ta.RolloutProvider):
    """Lane k of a request continues prompt_text with script(prompt_text, k); counts requests."""

    def __init__(self):
        super().__init__()
        self.requests = 0

    def name(self):
        return "scripted"

    def complete(self, prompt_ids, n, **fields):
        self.requests += 1
        return [ta.Completion(text=script(fields["prompt_text"], k), finish_reason="stop") for k in range(n)]


def words(text: str) -> set:
    return set(re.findall(r"\w+", text.lower()))


def jaccard(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def similarity(pairs):
    return [jaccard(a, b) for a, b in pairs]


def boxed(text: str):
    found = re.findall(r"\\boxed\{(\d+)\}", text)
    return found[-1] if found else None


def gap_after(trace, k: int) -> str:
    """The whitespace after sentence k (" " when none), as docs/interventions.md defines the gap."""
    s, text = trace.sentences, trace.text
    end = s[k].char_end
    nxt = s[k + 1].char_start if k + 1 < len(s) else len(text)
    g = text[end:nxt]
    g = g[: len(g) - len(g.lstrip(" \t\r\n"))] if g.strip(" \t\r\n") else g
    return g or " "


def counts(labels) -> dict:
    out = {}
    for x in labels:
        if x is not None:
            out[x] = out.get(x, 0) + 1
    return out


def rate(labels, target: str) -> float:
    got = [x for x in labels if x is not None]
    return sum(x == target for x in got) / len(got) if target and got else math.nan


def rollout_labels(prompt: str, prefix: str, n: int, batch: int) -> list:
    """The boxed answers of n scripted rollouts of prompt + prefix (sample k is lane k % batch)."""
    return [boxed(script(prompt + prefix, k % batch)) for k in range(n)]


def kl(p: dict, q: dict, alpha: float) -> float:
    support = sorted(set(p) | set(q))
    tp, tq = sum(p.values()) + alpha * len(support), sum(q.values()) + alpha * len(support)
    total = 0.0
    for k in support:
        pa, qa = (p.get(k, 0) + alpha) / tp, (q.get(k, 0) + alpha) / tq
        if pa > 0:
            total += math.inf if qa <= 0 else pa * math.log(pa / qa)
    return max(0.0, total)


def reference(trace, prompt, *, sentences, n, rounds, tau, batch, label, target, compat=False, alpha=1e-9):
    """docs/thought-branches.md "Resilience", written out: one dict of figures per target sentence."""
    s, text = trace.sentences, trace.text
    out = {}
    for i in sentences:
        original = s[i].text
        before = text[: s[i].char_start]
        chains = []
        for r in range(n):
            prefix, found_times, state, final = before, 0, None, None
            for t in range(1, rounds + 1):
                c = script(prompt + prefix, r % batch if t == 1 else 0)
                parts = ta.split_sentences(c)
                sims = [jaccard(original, p.text) for p in parts]
                best = max(range(len(sims)), key=lambda j: (sims[j], -j)) if sims else None
                found = best is not None and sims[best] >= tau
                if found:
                    found_times += 1
                    prefix += c[: parts[best].char_start]
                if not found or t == rounds:
                    state, final = ("persisted" if found else "abandoned"), label(c)
                    chains.append(dict(rounds=t, returns=found_times, state=state, label=final))
                    break
        kept = []
        if i + 1 < len(s):
            through = text[: s[i].char_end] + gap_after(trace, i)
            kept = [label(script(prompt + through, k % batch)) for k in range(n)]
        gone = [c["label"] for c in chains if compat or c["state"] == "abandoned"]

        pg, pk = counts(gone), counts(kept)
        out[i] = dict(
            persistence=sum(c["state"] == "persisted" for c in chains) / n,
            iterations=sum(c["rounds"] for c in chains) / n,
            returns=sum(c["returns"] for c in chains) / n,
            abandoned_rate=rate(gone, target), kept_rate=rate(kept, target), cfpp=rate(kept, target) - rate(gone, target),
            cfpp_kl=kl(pg, pk, alpha) if pg and pk else math.nan,
            chains=chains)
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-12


@pytest.fixture(scope="module")
def model():
    return ta.load_embedded_model()


def make_trace():
    return ta.Trace.from_text(SOLUTION, metadata={"problem": PROBLEM, "gt_answer": "5"})


@pytest.mark.parametrize("kind", ["binary", "categorical", "binary-compat"])
def test_resilience_equals_the_reference(model, tmp_path, kind):
    trace = make_trace()
    prompt = ta.render_prompt(model.tokenizer, "raw", PROBLEM).text
    n, rounds, tau, batch = 12, 4, 0.6, 5
    targets = [0, 1, 2, 4]
    compat = kind == "binary-compat"
    if kind == "categorical":
        outcome = ta.FunctionOutcome(boxed, name="boxed-digits")
        label, target = boxed, ""
        trace = ta.Trace.from_text(SOLUTION, metadata={"problem": PROBLEM})  # no target: the KL form only
    else:
        outcome, label, target = None, boxed, "5"
    provider = Scripted()
    method = ta.Resilience(num_rollouts=n, provider=provider, tokenizer=model, similarity=similarity,
                           out_dir=str(tmp_path / "run"), outcome=outcome, sentences=targets,
                           max_iterations=rounds, similarity_threshold=tau, batch=batch, compat=compat)
    result = method.run(trace)
    a = result.attribution("resilience")
    want = reference(trace, prompt, sentences=targets, n=n, rounds=rounds, tau=tau, batch=batch, label=label,
                     target=target, compat=compat)
    figures = {"resilience_persistence": "persistence", "resilience_iterations": "iterations",
               "resilience_returns": "returns", "counterfactual_plusplus_importance_kl": "cfpp_kl"}
    if target:
        figures.update(kept_rate="kept_rate", abandoned_rate="abandoned_rate",
                       counterfactual_plusplus_importance="cfpp")
    else:
        assert "counterfactual_plusplus_importance" not in a.scores and "kept_rate" not in a.scores
    for series, key in figures.items():
        got = a.score(series).tolist()
        for i in range(len(trace.sentences)):
            expected = want[i][key] if i in want else math.nan
            assert same(got[i], expected), (series, i, got[i], expected)
    # The scenario is rich enough to test something: chains that persist, chains abandoned after the
    # content came back, and a sentence whose removal changes the outcome.
    states = [c["state"] for w in want.values() for c in w["chains"]]
    assert "persisted" in states and "abandoned" in states
    assert any(c["returns"] > 0 and c["state"] == "abandoned" for w in want.values() for c in w["chains"])
    assert any(w["cfpp_kl"] > 0.01 for w in want.values() if not math.isnan(w["cfpp_kl"]))
    # The chain files hold the reference's chains.
    for i, w in want.items():
        for r, chain in enumerate(w["chains"]):
            doc = json.loads((tmp_path / "run" / "resilience" / f"sentence_{i}" / f"chain_{r}.json").read_text())
            assert doc["state"] == chain["state"] and len(doc["rounds"]) == chain["rounds"]
            assert doc["rounds"][-1]["label"] == chain["label"]
    # A second run generates nothing and gives the same attribution.
    before = provider.requests
    assert method.run(trace).attribution("resilience") == a
    assert provider.requests == before


def test_resilience_errors_are_clear(model, tmp_path):
    trace = make_trace()
    provider = Scripted()

    def run(out="bad", t=trace, **options):
        options = dict(dict(num_rollouts=2, max_iterations=2), **options)
        return ta.Resilience(provider=provider, tokenizer=model, similarity=similarity, out_dir=str(tmp_path / out),
                             **options).run(t)

    with pytest.raises(ta.Error, match="sentence 9 is not in the trace"):
        run(sentences=[9])
    with pytest.raises(ta.Error, match="sentence 1 is given twice"):
        run(sentences=[1, 1])
    with pytest.raises(ta.Error, match="max_iterations must be >= 1"):
        run(max_iterations=0)
    with pytest.raises(ta.Error, match="num_rollouts must be >= 1"):
        run(num_rollouts=0)
    with pytest.raises(ta.Error, match="unknown option"):
        ta.Resilience(provider=provider, tokenizer=model, rounds=3)
    with pytest.raises(ta.Error, match="no prompt"):
        run(t=ta.Trace.from_text(SOLUTION))
    # Another segmentation of the same text in the same folder is an error, never mixed in.
    run(out="seg", sentences=[1])
    options = ta.SegmentOptions()
    options.merge_shorter_than = 30  # sentence 0 absorbs sentence 1: sentence 1 is another text
    resegmented = ta.Trace.from_text(SOLUTION, options=options, metadata={"problem": PROBLEM, "gt_answer": "5"})
    assert resegmented.sentences[1].text != trace.sentences[1].text
    with pytest.raises(ta.Error, match="another text of sentence 1"):
        run(out="seg", t=resegmented, sentences=[1])
    # A provider that fails every request: a clear error, and the chains stay for the next run.

    class Down(ta.RolloutProvider):
        def complete(self, prompt_ids, n, **fields):
            raise ta.Error("connection refused")

    with pytest.raises(ta.Error, match="every request to .* failed.*connection refused"):
        ta.Resilience(provider=Down(), tokenizer=model, similarity=similarity, out_dir=str(tmp_path / "down"),
                      num_rollouts=2, max_iterations=2).run(trace)


RUNNER = """
import sys, thought_anchors as ta
trace = ta.Trace.from_text({solution!r}, metadata={{"problem": {problem!r}, "gt_answer": "5"}})
model = ta.load_embedded_model()
common = dict(provider=model, out_dir=sys.argv[1], batch=3, max_tokens=40, seed=3)
method = {{
    "resilience": lambda: ta.Resilience(num_rollouts=6, sentences=[1, 3], max_iterations=3, **common),
    "off_policy": lambda: ta.OffPolicy(num_rollouts=6, sentences=[1, 3], edits="wait,doubt", **common),
    "on_policy": lambda: ta.OnPolicy(num_rollouts=6, sentences=[1, 3], targets="doubt", candidates=8,
                                     min_similarity=0.0, **common),
}}[sys.argv[2]]()
method.run(trace)
"""


def files(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes()
            for p in sorted(out.rglob("*.json")) if p.name not in ("manifest.json",)}


@pytest.mark.parametrize("method,done_files", [("resilience", 12), ("off_policy", 6), ("on_policy", 6)])
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path, method, done_files):
    script_path = tmp_path / "run.py"
    script_path.write_text(RUNNER.format(solution=SOLUTION, problem=PROBLEM), encoding="utf-8")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([sys.executable, str(script_path), str(whole), method], check=True, timeout=600)
    pattern = "chain_*.json" if method == "resilience" else "solutions.json"
    assert len(list(whole.rglob(pattern))) == done_files
    proc = subprocess.Popen([sys.executable, str(script_path), str(killed), method])
    deadline = time.time() + 300
    while time.time() < deadline and len(list(killed.rglob(pattern))) < 2:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = files(killed)
    assert partial and partial != files(whole), "killed before any or after all work: the test proves nothing"
    subprocess.run([sys.executable, str(script_path), str(killed), method], check=True, timeout=600)
    assert files(killed) == files(whole)  # byte-identical: same seeds, nothing lost or duplicated


def test_resilience_from_the_cli_into_the_report(anchors_cli, minilm_dir, tmp_path):
    """`anchors run resilience` on the embedded model with the real MiniLM; a re-run resumes; the report
    shows the series."""
    (tmp_path / "reasoning.txt").write_text(SOLUTION, encoding="utf-8")
    command = [anchors_cli, "run", "resilience", "--model", ta.embedded_model_path(), "--text",
               str(tmp_path / "reasoning.txt"), "--problem", PROBLEM, "--gt-answer", "5", "--rollouts-dir",
               str(tmp_path / "rollouts"), "--out", str(tmp_path / "result.json"), "--embedder", minilm_dir,
               "--sentences", "1,3", "--num_rollouts", "4", "--max_iterations", "3", "--max_tokens", "40",
               "--batch", "4", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "top sentences by counterfactual_plusplus_importance" in done.stdout
    result = ta.load_result(str(tmp_path / "result.json"))
    a = result.attribution("resilience")
    persistence = a.score("resilience_persistence").tolist()
    assert [math.isnan(x) for x in persistence] == [i not in (1, 3) for i in range(len(persistence))]
    assert all(0 <= persistence[i] <= 1 for i in (1, 3))
    assert a.metadata["incomplete_chains"] == 0 and a.options["sentences"] == [1, 3]
    chains = sorted((tmp_path / "rollouts" / "resilience").rglob("chain_*.json"))
    assert len(chains) == 8
    stamps = [p.stat().st_mtime_ns for p in chains]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in chains] == stamps  # nothing regenerated
    assert ta.load_result(str(tmp_path / "result.json")).attribution("resilience") == a
    # off_policy on the same result: its attribution joins resilience's.
    edits = subprocess.run([anchors_cli, "run", "off_policy", "--model", ta.embedded_model_path(), "--result",
                            str(tmp_path / "result.json"), "--rollouts-dir", str(tmp_path / "edits"), "--sentences",
                            "1", "--num_rollouts", "3", "--max_tokens", "30", "--batch", "3", "--edits", "wait",
                            "--insert_texts", '["Let me verify this."]', "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert edits.returncode == 0, edits.stderr
    both = ta.load_result(str(tmp_path / "result.json"))
    assert both.attribution("resilience") == a
    off = both.attribution("off_policy")
    assert off.score("wait_logprob")[1].item() < 0 and off.score("insert_0_logprob")[1].item() < 0
    assert -20 < off.score("original_logprob")[1].item() < 0
    on = subprocess.run([anchors_cli, "run", "on_policy", "--model", ta.embedded_model_path(), "--result",
                         str(tmp_path / "result.json"), "--rollouts-dir", str(tmp_path / "onpolicy"), "--sentences",
                         "2", "--num_rollouts", "3", "--max_tokens", "30", "--batch", "3", "--targets", "doubt",
                         "--candidates", "8", "--min_similarity", "0", "--embedder", minilm_dir, "--quiet"],
                        capture_output=True, text=True, timeout=600)
    assert on.returncode == 0, on.stderr
    onp = ta.load_result(str(tmp_path / "result.json")).attribution("on_policy")
    assert onp.metadata["on_doubt_2"] and onp.score("on_doubt_logprob")[2].item() < 0  # short rollouts: few labels
    page = tmp_path / "report.html"
    shown = subprocess.run([anchors_cli, "report", str(tmp_path / "result.json"), "-o", str(page)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    html = page.read_text(encoding="utf-8")
    assert "counterfactual_plusplus_importance" in html and "wait_logprob" in html and "on_doubt_logprob" in html
    # Bad use is a clear usage error, before anything runs.
    missing = [c for c in command if c != "--rollouts-dir" and c != str(tmp_path / "rollouts")]
    bad = subprocess.run(missing, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--rollouts-dir" in bad.stderr


# ---------------------------------------------------------------------------------------------------------
# Log-probabilities of a prompt's tokens (RolloutProvider.prompt_logprobs), against transformers.


@pytest.fixture(scope="module")
def hf_tokenizer():
    import tokenizers

    return tokenizers.Tokenizer.from_file(str(Path(ta.embedded_model_path()) / "tokenizer.json"))


def hf_logprobs(ids):
    """log p(ids[k] | ids[:k]) from transformers on the embedded checkpoint (float64 log-softmax)."""
    import torch
    import transformers

    lm = transformers.AutoModelForCausalLM.from_pretrained(ta.embedded_model_path(), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = lm(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return [math.nan] + [logp[k - 1, ids[k]].item() for k in range(1, len(ids))]


def test_prompt_logprobs_match_transformers_locally_and_over_http(model, hf_tokenizer, anchors_cli):
    text = ta.render_prompt(model.tokenizer, "raw", PROBLEM).text + SOLUTION
    ids = hf_tokenizer.encode(text).ids
    want = hf_logprobs(ids)
    local = ta.LocalProvider(model).prompt_logprobs(ids)
    assert len(local) == len(ids) and math.isnan(local[0])
    assert max(abs(a - b) for a, b in zip(local[1:], want[1:])) < 1e-4
    assert all(v <= 0 for v in local[1:])
    proc = subprocess.Popen([anchors_cli, "serve", "--model", ta.embedded_model_path(), "--port", "0", "--device",
                             "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", proc.stdout.readline())
        assert found
        remote = ta.OpenAIProvider(found.group(1)).prompt_logprobs(ids)
        assert math.isnan(remote[0]) and max(abs(a - b) for a, b in zip(remote[1:], local[1:])) < 1e-9
        # The echo answer itself, as a client of the OpenAI API reads it.
        import urllib.request

        body = json.dumps({"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1}).encode()
        request = urllib.request.Request(found.group(1) + "/v1/completions", body,
                                         {"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        lp = answer["choices"][0]["logprobs"]
        assert answer["choices"][0]["text"] == text
        assert lp["token_logprobs"][0] is None and len(lp["token_logprobs"]) == len(ids)
        assert "".join(lp["tokens"]) == text and lp["text_offset"][0] == 0
        assert max(abs(a - b) for a, b in zip(lp["token_logprobs"][1:], local[1:])) < 1e-9
        bad = urllib.request.Request(found.group(1) + "/v1/completions",
                                     json.dumps({"prompt": text, "logprobs": 1}).encode(),
                                     {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=60)
        assert refused.value.code == 400 and "only with" in refused.value.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(ta.Error, match="cannot score prompts"):
        Scripted().prompt_logprobs(ids)
    with pytest.raises(ta.Error, match="outside|vocab"):
        ta.LocalProvider(model).prompt_logprobs([10**6, 1])


# ---------------------------------------------------------------------------------------------------------
# Off-policy edits.


class ScriptedScorer(Scripted):
    """Scripted, plus a made-up but deterministic prompt_logprobs: -(1 + id % 7) / 4 per token."""

    def prompt_logprobs(self, prompt_ids):
        return [math.nan] + [-(1 + i % 7) / 4 for i in prompt_ids[1:]]


def mean_logprob(hf_tokenizer, text, begin, end):
    """The mean over tokens whose span overlaps [begin, end), by the tokenizers package's offsets."""
    enc = hf_tokenizer.encode(text)
    values = [-(1 + i % 7) / 4 for i in enc.ids]
    picked = [v for k, (v, (a, b)) in enumerate(zip(values, enc.offsets)) if k > 0 and a < b and b > begin and a < end]
    return sum(picked) / len(picked) if picked else math.nan


@pytest.mark.parametrize("kind", ["binary", "categorical"])
def test_off_policy_equals_the_reference(model, hf_tokenizer, tmp_path, kind):
    trace = make_trace() if kind == "binary" else ta.Trace.from_text(SOLUTION, metadata={"problem": PROBLEM})
    outcome = None if kind == "binary" else ta.FunctionOutcome(boxed, name="boxed-digits")
    target = "5" if kind == "binary" else ""
    prompt = ta.render_prompt(model.tokenizer, "raw", PROBLEM).text
    n, batch, targets = 10, 4, [0, 2, 4]
    mine = ["I should double-check the sum."]
    swap = ["I start at two."]
    donor = tmp_path / "donor.txt"
    donor.write_text("Hmm, is this really the right approach? I think so. Not sure about this at all.",
                     encoding="utf-8")
    method = ta.OffPolicy(num_rollouts=n, provider=ScriptedScorer(), tokenizer=model, similarity=similarity,
                          out_dir=str(tmp_path / "run"), outcome=outcome, sentences=targets, batch=batch,
                          edits=["wait", "question", "doubt"], insert_texts=mine, substitute_texts=swap,
                          donor=donor, donor_threshold=0.3)
    a = method.run(trace).attribution("off_policy")
    s, text = trace.sentences, trace.text

    # The donor sentences nearest each disruption (word overlap >= 0.3): chosen like the authors' pool search.
    pool = [p.text for p in ta.split_sentences(donor.read_text())]
    fixed = {"wait": "Wait,", "question": "But wait, is this really the right approach?",
             "doubt": "Actually, I'm not sure about this."}
    donors = {}
    for name in ("question", "doubt"):
        best = max(pool, key=lambda p: (jaccard(fixed[name], p), -pool.index(p)))
        if jaccard(fixed[name], best) >= 0.3:
            donors["donor_" + name] = best
    assert donors, "the donor test needs at least one accepted sentence"
    edits = [(k, v, False) for k, v in fixed.items()] + [("insert_0", mine[0], False),
                                                         ("substitute_0", swap[0], True)]
    edits += [(k, v, False) for k, v in donors.items()]
    for i in range(len(s)):
        if i not in targets:
            assert all(math.isnan(v[i]) for v in a.scores.values())
            continue
        before = text[: s[i].char_start]
        through = text[: s[i].char_end] + gap_after(trace, i)
        kept = rollout_labels(prompt, text[: s[i + 1].char_start], n, batch) if i + 1 < len(s) else None
        assert same(a.score("original_logprob")[i].item(),
                    mean_logprob(hf_tokenizer, prompt + text[: s[i].char_end], len(prompt + before),
                                 len(prompt + before) + len(s[i].text)))
        for name, t, substitute in edits:
            prefix = (before if substitute else through) + t + gap_after(trace, i)
            start = len(prompt) + len(before if substitute else through)
            assert same(a.score(name + "_logprob")[i].item(), mean_logprob(hf_tokenizer, prompt + prefix, start,
                                                                           start + len(t))), (name, i)
            got = rollout_labels(prompt, prefix, n, batch)
            shift = rate(got, target) - rate(kept, target) if kept else math.nan
            if target:
                assert same(a.score(name + "_rate_shift")[i].item(), shift), (name, i)
            want_kl = kl(counts(got), counts(kept), 1e-9) if kept and counts(got) and counts(kept) else math.nan
            assert same(a.score(name + "_kl")[i].item(), want_kl), (name, i)
    if not target:
        assert not any(k.endswith("_rate_shift") for k in a.scores)
    assert any(not math.isnan(v) and v > 0.01 for k in a.scores if k.endswith("_kl") for v in a.score(k).tolist())
    with pytest.raises(ta.Error, match="unknown edit"):
        ta.OffPolicy(provider=ScriptedScorer(), tokenizer=model, edits="wiat", out_dir=str(tmp_path / "x")).run(trace)
    with pytest.raises(ta.Error, match="cannot score prompts"):
        ta.OffPolicy(provider=Scripted(), tokenizer=model, out_dir=str(tmp_path / "y"), num_rollouts=1).run(trace)
    with pytest.raises(ta.Error, match="JSON list of non-empty strings"):
        ta.OffPolicy(provider=ScriptedScorer(), tokenizer=model, insert_texts='["ok", ""]',
                     out_dir=str(tmp_path / "z")).run(trace)


# ---------------------------------------------------------------------------------------------------------
# The on-policy intervention.


def candidate_pool(text: str, X: int) -> list:
    """The distinct first sentences of X scripted continuations of `text`, each with the whitespace after it."""
    pool = []
    for k in range(X):
        c = script(text, k)
        parts = ta.split_sentences(c)
        if parts and parts[0].text not in [p for p, _ in pool]:
            rest = c[parts[0].char_end:]
            pool.append((parts[0].text, rest[: len(rest) - len(rest.lstrip(" \t\r\n"))] or " "))
    return pool


@pytest.mark.parametrize("kind,search", [("binary", 1), ("categorical", 1), ("binary", 2)])
def test_on_policy_equals_the_reference(model, hf_tokenizer, tmp_path, kind, search):
    trace = make_trace() if kind == "binary" else ta.Trace.from_text(SOLUTION, metadata={"problem": PROBLEM})
    outcome = None if kind == "binary" else ta.FunctionOutcome(boxed, name="boxed-digits")
    target = "5" if kind == "binary" else ""
    prompt = ta.render_prompt(model.tokenizer, "raw", PROBLEM).text
    n, batch, X, sentences, tau = 8, 4, 6, [1, 3], 0.3
    goals = {"doubt": "Actually, I'm not sure about this.", "target_0": "I start from two, then count up."}
    method = ta.OnPolicy(num_rollouts=n, provider=ScriptedScorer(), tokenizer=model, similarity=similarity,
                         out_dir=str(tmp_path / "run"), outcome=outcome, sentences=sentences, batch=batch,
                         targets=["doubt"], target_texts=[goals["target_0"]], candidates=X, min_similarity=tau,
                         search_sentences=search)
    result = method.run(trace)
    a = result.attribution("on_policy")
    s, text = trace.sentences, trace.text

    found_any, searched_on = False, False
    for i in sentences:
        before = text[: s[i].char_start]
        kept = rollout_labels(prompt, text[: s[i + 1].char_start], n, batch)
        for name, goal in goals.items():
            # The search: while the best candidate stays below tau, keep it (with its gap) and search
            # the next sentence, up to `search` sentences; ties go to the likelier text in place.
            accepted = ""
            for r in range(search):
                pool = candidate_pool(prompt + before + accepted, X)
                sims = [jaccard(goal, p) for p, _ in pool]
                best = max(sims)
                tied = [c for c, v in zip(pool, sims) if v == best]
                start = len(prompt + before + accepted)

                def likelihood(c):
                    return mean_logprob(hf_tokenizer, prompt + before + accepted + c[0] + gap_after(trace, i), start,
                                        start + len(c[0]))

                chosen = max(tied, key=lambda c: (likelihood(c), -tied.index(c)))
                if best >= tau or r + 1 == search:
                    accepted += chosen[0]
                    break
                accepted += chosen[0] + chosen[1]
            searched_on |= r > 0
            assert a.metadata[f"on_{name}_{i}"] == accepted
            assert same(a.score(f"on_{name}_similarity")[i].item(), best)
            assert a.score(f"on_{name}_sentences")[i].item() == r + 1
            edits = [("off_" + name, goal)] + ([("on_" + name, accepted)] if best >= tau else [])
            found_any |= best >= tau
            if best < tau:
                assert math.isnan(a.score(f"on_{name}_kl")[i].item()) if f"on_{name}_kl" in a.scores else True
            for series, t in edits:
                prefix = before + t + gap_after(trace, i)
                start = len(prompt + before)
                assert same(a.score(series + "_logprob")[i].item(),
                            mean_logprob(hf_tokenizer, prompt + prefix, start, start + len(t))), (series, i)
                got = rollout_labels(prompt, prefix, n, batch)
                if target:
                    assert same(a.score(series + "_rate_shift")[i].item(), rate(got, target) - rate(kept, target)), (series, i)
                assert same(a.score(series + "_kl")[i].item(), kl(counts(got), counts(kept), 1e-9)), (series, i)
    assert searched_on == (search > 1), "with search_sentences 2 some search must go on to a second sentence"
    assert found_any, "the scripted candidates must reach min_similarity somewhere"
    with pytest.raises(ta.Error, match="unknown target"):
        ta.OnPolicy(provider=ScriptedScorer(), tokenizer=model, similarity=similarity, targets="wait",
                    out_dir=str(tmp_path / "x")).run(trace)


# ---------------------------------------------------------------------------------------------------------
# Scenario files: the embedded scenario end to end, from the CLI and from Python.


def test_embedded_scenario_from_the_cli_and_python(anchors_cli, minilm_dir, model, tmp_path):
    path = Path(ta.embedded_model_path()) / "demo_scenario.json"
    scenario = ta.embedded_scenario()
    assert scenario == json.loads(path.read_text(encoding="utf-8"))
    want_prompt = ta.render_prompt(model.tokenizer, "raw", scenario["user_prompt"]).text
    out = tmp_path / "cli"
    done = subprocess.run([anchors_cli, "analyze", "--model", ta.embedded_model_path(), "--problem", str(path),
                           "--out", str(out), "--rollouts", "2", "--max_tokens", "160", "--embedder", minilm_dir,
                           "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    folders = list(out.glob("*_base_solution/problem_*"))
    assert len(folders) == 1
    folder = folders[0]
    assert json.loads((folder / "scenario.json").read_text()) == scenario  # the folder names its scenario
    base = json.loads((folder / "base_solution.json").read_text())
    assert base["prompt"] == want_prompt  # prompt_format "raw": the model's own format
    result = ta.load_result(str(folder / "result.json"))
    a = result.attribution("resampling")
    assert a.metadata["outcome"].startswith("regex:")  # the scenario's outcome, not \boxed{}
    assert result.trace.metadata["gt_answer"] == "57" and result.trace.metadata["scenario"]
    records = json.loads((folder / "chunk_0" / "solutions.json").read_text())
    assert all(r["answer"] == "" or r["answer"].isdigit() for r in records)
    assert all(r["is_correct"] == (r["answer"] == "57") for r in records)
    # The folder imports back with its target; a black-box method on the result uses the scenario's outcome.
    assert ta.import_reference(str(folder)).trace.metadata["gt_answer"] == "57"
    run = subprocess.run([anchors_cli, "run", "resilience", "--model", ta.embedded_model_path(), "--result",
                          str(folder / "result.json"), "--rollouts-dir", str(tmp_path / "res"), "--sentences", "1",
                          "--num_rollouts", "2", "--max_iterations", "2", "--max_tokens", "100", "--embedder",
                          minilm_dir, "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert ta.load_result(str(folder / "result.json")).attribution("resilience").metadata["outcome"].startswith("regex:")
    # From Python: the same scenario dict, the same prompt and outcome.
    py = ta.analyze(model, scenario, str(tmp_path / "py"), num_rollouts=2, max_tokens=160)
    assert py.trace.prompt == want_prompt
    assert py.attribution("resampling").metadata["outcome"].startswith("regex:")
    # What a format cannot hold is a clear error.
    with pytest.raises(ta.Error, match="one user message"):
        ta.analyze(model, dict(scenario, system_prompt="Be careful."), str(tmp_path / "bad"), num_rollouts=1)


# ---------------------------------------------------------------------------------------------------------
# A chat model as the similarity judge (ta.ChatSimilarity, --similarity judge:URL), on a loopback server.


class SameContentJudge(LoopbackHandler):
    """Reads sentences A and B out of ChatSimilarity's default prompt; answers "Yes." when their word
    overlap is at least 0.5, else "no" (after a <think> block, to exercise the answer parsing), or
    nonsense in mode "garbage". Records every request body."""

    mode = "ok"
    bodies: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.json_body()
        type(self).bodies.append(body)
        user = body["messages"][-1]["content"]
        a = re.search(r"\nA: (.*?)\n\nB: ", user, re.S).group(1)
        b = re.search(r"\n\nB: (.*?)\n\nDoes B", user, re.S).group(1)
        answer = "Yes." if jaccard(a, b) >= 0.5 else "<think>They differ.</think>\nno"
        if self.mode == "garbage":
            answer = "Perhaps."
        self.reply({"choices": [{"message": {"role": "assistant", "content": answer}}]})


@pytest.fixture()
def same_content_judge():
    SameContentJudge.mode, SameContentJudge.bodies = "ok", []
    with loopback(SameContentJudge) as url:
        yield url


def test_resilience_with_a_chat_judge_for_similarity(model, same_content_judge, tmp_path):
    trace = make_trace()
    options = dict(num_rollouts=8, tokenizer=model, sentences=[0, 1, 2], max_iterations=3, batch=4)
    judge = ta.ChatSimilarity(same_content_judge, model="judge")
    by_judge = ta.Resilience(provider=Scripted(), similarity=judge, out_dir=str(tmp_path / "judge"),
                             **options).run(trace).attribution("resilience")
    # The same rule as a Python callable: the judge's yes/no is similarity 1/0.
    rule = ta.Resilience(provider=Scripted(), similarity=lambda pairs: [float(jaccard(a, b) >= 0.5) for a, b in pairs],
                         out_dir=str(tmp_path / "rule"), **options).run(trace).attribution("resilience")
    assert by_judge.scores.keys() == rule.scores.keys()
    for name in rule.scores:
        assert all(same(x, y) for x, y in zip(by_judge.score(name).tolist(), rule.score(name).tolist())), name
    assert any(v > 0 for v in by_judge.score("resilience_returns").tolist() if not math.isnan(v))
    assert judge.requests == len({json.dumps(b["messages"]) for b in SameContentJudge.bodies})  # one per pair
    assert all(b["model"] == "judge" for b in SameContentJudge.bodies)
    assert judge.similarities([("I add 2 and 3.", "I add 2 and 3."), ("I add 2 and 3.", "Done.")]) == [1.0, 0.0]
    # A judge that does not answer with a label is an error, not "different".
    SameContentJudge.mode = "garbage"
    with pytest.raises(ta.Error, match="expected one of the labels"):
        ta.ChatSimilarity(same_content_judge).similarities([("One thing.", "Another thing.")])
    with pytest.raises(ta.Error, match=r"\{a\} and \{b\}"):
        ta.ChatSimilarity(same_content_judge, prompt="Same? {a}")


# ---------------------------------------------------------------------------------------------------------
# Scenarios: multi-turn chats in a model's format, and `anchors run --text --scenario`.


class Recording(Scripted):
    """Scripted, and keeps every request's prompt_text and messages."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def complete(self, prompt_ids, n, **fields):
        self.seen.append((fields["prompt_text"], fields["messages"]))
        return super().complete(prompt_ids, n, **fields)


def test_a_multi_turn_scenario_reaches_text_and_chat_providers(model, tmp_path):
    scenario = {"conversation_history": [{"role": "system", "content": "You are careful."},
                                         {"role": "user", "content": "Hello."},
                                         {"role": "assistant", "content": "<think>A greeting.</think>\n\nHi."},
                                         {"role": "user", "content": PROBLEM}],
                "prompt_format": "qwen3"}
    trace = ta.Trace.from_text(SOLUTION, metadata={"scenario": json.dumps(scenario), "gt_answer": "5"})
    provider = Recording()
    ta.Resilience(num_rollouts=2, provider=provider, tokenizer=model, similarity=similarity, sentences=[2],
                  max_iterations=1, out_dir=str(tmp_path / "run")).run(trace)
    # Qwen3's template: every turn in <|im_start|> blocks, the earlier answer without its reasoning.
    head = ("<|im_start|>system\nYou are careful.<|im_end|>\n<|im_start|>user\nHello.<|im_end|>\n"
            "<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\n" + PROBLEM + "<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n")
    turns = [{"role": "system", "content": "You are careful."}, {"role": "user", "content": "Hello."},
             {"role": "assistant", "content": "<think>A greeting.</think>\n\nHi."}, {"role": "user", "content": PROBLEM}]
    before = SOLUTION[: trace.sentences[2].char_start]
    assert provider.seen, "the method sampled nothing"
    for prompt_text, messages in provider.seen:
        assert prompt_text.startswith(head + before)
        assert [dict(m) for m in messages[:-1]] == turns  # the chat form: the scenario's turns ...
        assert messages[-1]["role"] == "assistant" and prompt_text == head + messages[-1]["content"]  # ... + prefix
    # The raw format has no turns: a clear error.
    raw = dict(scenario, prompt_format="raw")
    with pytest.raises(ta.Error, match="one user message"):
        ta.Resilience(num_rollouts=1, provider=Recording(), tokenizer=model, similarity=similarity, sentences=[0],
                      out_dir=str(tmp_path / "raw")).run(
            ta.Trace.from_text(SOLUTION, metadata={"scenario": json.dumps(raw)}))


def test_run_a_method_on_a_text_with_a_scenario_from_the_cli(anchors_cli, same_content_judge, tmp_path):
    path = Path(ta.embedded_model_path()) / "demo_scenario.json"
    text = tmp_path / "solution.txt"
    text.write_text("I need the total. 3 dozen is 36, plus 21 is 57. So the answer is \\boxed{57}.", encoding="utf-8")
    out = tmp_path / "result.json"
    done = subprocess.run([anchors_cli, "run", "resilience", "--model", ta.embedded_model_path(), "--text", str(text),
                           "--scenario", str(path), "--out", str(out), "--rollouts-dir", str(tmp_path / "res"),
                           "--similarity", "judge:" + same_content_judge, "--similarity-model", "judge",
                           "--sentences", "1", "--num_rollouts", "2", "--max_iterations", "2", "--max_tokens", "60",
                           "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = ta.load_result(str(out))
    assert result.trace.prompt == ta.render_prompt(ta.load_embedded_model().tokenizer, "raw",
                                                   ta.embedded_scenario()["user_prompt"]).text
    assert json.loads(result.trace.metadata["scenario"]) == ta.embedded_scenario()
    assert result.trace.metadata["gt_answer"] == "57" and result.trace.answer == "57"
    a = result.attribution("resilience")
    assert a.metadata["outcome"].startswith("regex:")  # the scenario's outcome
    assert not math.isnan(a.score("resilience_persistence")[1].item())
    assert SameContentJudge.bodies and all(b["model"] == "judge" for b in SameContentJudge.bodies)
    # Flags that need each other, and a text with two prompts, are usage errors.
    for extra, why in [(["--similarity-model", "j"], "need --similarity"), (["--problem", "x"], "one of --problem")]:
        bad = subprocess.run([anchors_cli, "run", "resilience", "--model", ta.embedded_model_path(), "--text",
                              str(text), "--scenario", str(path), "--out", str(out), "--rollouts-dir",
                              str(tmp_path / "bad")] + extra, capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0 and why in bad.stderr, bad.stderr
