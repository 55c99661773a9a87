"""Rollout providers from Python: subclasses of ta.RolloutProvider (called by the C++ pipeline, from
threads, with clear errors for bad answers), the docs example executed verbatim, the new request fields
(prompt_text, messages, min_p, penalties), and the sampler's min-p / repetition penalty against
transformers' own logits processors on a tiny checkpoint."""

from __future__ import annotations

import gc
import re
import shutil
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import thought_anchors as ta  # noqa: E402  (a missing dependency is an error, never a skip)
import torch  # noqa: E402
import transformers  # noqa: E402

from conftest import REPO  # noqa: E402

TINY = REPO / "tests" / "data" / "tiny_models" / "qwen2_bias_tied"
SOLUTION = ("I need to add 2 and 3. First, I start from 2. Then 2 + 3 = 5. "
            "So the answer is 5.\n</think>\n\nThe answer is \\boxed{5}.")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random tiny Qwen2 with the bundled test tokenizer (1000 ids < vocab 1024)."""
    path = tmp_path_factory.mktemp("providers_qwen2")
    config = transformers.Qwen2Config(vocab_size=1024, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      tie_word_embeddings=True)
    torch.manual_seed(5)
    transformers.Qwen2ForCausalLM(config).save_pretrained(path, safe_serialization=True)
    shutil.copy(REPO / "tests" / "data" / "tokenizers" / "qwen2" / "tokenizer.json", path / "tokenizer.json")
    return path


@pytest.fixture(scope="module")
def model(model_dir):
    return ta.Model.load(str(model_dir))


def constant_similarity(pairs):
    # Keeps these tests off the MiniLM embedder: every pair of sentences is "similar".
    return [1.0] * len(pairs)


class Recorder(ta.RolloutProvider):
    """Answers n lanes of "k", remembering the arguments of every call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def name(self):
        return "recorder"

    def complete(self, prompt_ids, n, **fields):
        self.calls.append(dict(prompt_ids=prompt_ids, n=n, **fields))
        return [ta.Completion(text=str(k), ids=[k], finish_reason="length") for k in range(n)]


def test_completion_is_constructible():
    c = ta.Completion(text="ab", ids=[3, 4], finish_reason="stop")
    assert (c.text, c.ids, c.finish_reason) == ("ab", [3, 4], "stop")
    assert ta.Completion(text="x") == ta.Completion(text="x", ids=[], finish_reason="")
    assert ta.Completion(text="x") != ta.Completion(text="y")
    with pytest.raises(TypeError):
        ta.Completion("positional text")  # keywords only: text and ids are easy to swap


def test_python_provider_gets_every_field_through_cpp():
    p = Recorder()
    assert isinstance(p, ta.RolloutProvider)
    # The base class's binding builds a C++ CompletionRequest, releases the GIL and calls the
    # virtual complete(), which lands in Python again: the path the C++ pipeline takes.
    out = ta.RolloutProvider.complete(p, [5, 6], 3, temperature=0.7, top_p=0.9, top_k=4, max_tokens=9,
                                      stop=["\n"], seed=2**63 + 5, prompt_text="five six",
                                      messages=[("user", "q"), {"role": "assistant", "content": "a"}],
                                      min_p=0.1, repetition_penalty=1.2, presence_penalty=0.3,
                                      frequency_penalty=-0.2)
    assert [c.text for c in out] == ["0", "1", "2"]
    assert p.calls == [dict(prompt_ids=[5, 6], n=3, temperature=0.7, top_p=0.9, top_k=4, max_tokens=9,
                            stop=["\n"], seed=2**63 + 5, prompt_text="five six",
                            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                            min_p=0.1, repetition_penalty=1.2, presence_penalty=0.3, frequency_penalty=-0.2)]
    assert repr(p) == "<RolloutProvider recorder>"

    # Without a name() the class name stands in; a plain string attribute works too.
    class Plain(ta.RolloutProvider):
        def complete(self, prompt_ids, n, **fields):
            return [ta.Completion(text="")] * n

    assert repr(Plain()) == "<RolloutProvider python:test_python_provider_gets_every_field_through_cpp.<locals>.Plain>"

    class Attribute(Plain):
        name = "fixed"

    assert repr(Attribute()) == "<RolloutProvider fixed>"


def test_python_provider_errors_are_clear():
    def provider(answer=None, raises=None, name="bad"):
        class Bad(ta.RolloutProvider):
            def name(self):
                return name

            def complete(self, prompt_ids, n, **fields):
                if raises is not None:
                    raise raises
                return answer(n)

        return Bad()

    def error_of(p, n=2):
        with pytest.raises(ta.Error) as info:
            ta.RolloutProvider.complete(p, [1, 2], n)
        return str(info.value)

    message = error_of(provider(raises=RuntimeError("the GPU is on fire")))
    assert "bad" in message and "RuntimeError" in message and "the GPU is on fire" in message
    assert "must return a list" in error_of(provider(lambda n: tuple(ta.Completion() for _ in range(n))))
    assert "must return a list" in error_of(provider(lambda n: None))
    message = error_of(provider(lambda n: ["text"] * n))
    assert "str at index 0" in message and "ta.Completion" in message
    message = error_of(provider(lambda n: [ta.Completion()] * (n + 1)), n=2)
    assert "3 completions for n = 2" in message
    assert "for n = 2" in error_of(provider(lambda n: []))
    # name() is asked for by C++ (logs, result metadata, repr), not by every complete().
    with pytest.raises(ta.Error, match=r"Bad.name\(\) must return a str, got int"):
        repr(provider(lambda n: [ta.Completion()] * n, name=42))
    with pytest.raises(ta.Error, match="name"):
        ta.RolloutProvider.name.fget(provider(lambda n: [], name=None))

    class NoComplete(ta.RolloutProvider):
        pass

    assert "does not define complete()" in error_of(NoComplete())

    class Forgot(ta.RolloutProvider):
        def __init__(self):  # no super().__init__()
            pass

    with pytest.raises(TypeError, match="__init__"):
        Forgot()


def test_python_provider_called_from_many_threads():
    """Four threads at once enter C++ without the GIL; each call takes it back in the trampoline."""
    p = Recorder()

    def call(i):
        return [c.ids[0] for c in ta.RolloutProvider.complete(p, [i + 1], 1 + i % 3)]

    with ThreadPoolExecutor(4) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(call, i) for i in range(40)]]
    assert results == [list(range(1 + i % 3)) for i in range(40)]
    assert sorted(c["prompt_ids"][0] for c in p.calls) == list(range(1, 41))


def test_python_provider_is_freed_once_unreferenced():
    p = Recorder()
    ta.RolloutProvider.complete(p, [1], 1)  # has been held by C++ as a shared_ptr
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None


def docs_example() -> str:
    """The fenced block after the marker in docs/rollout-providers.md, verbatim."""
    text = (REPO / "docs" / "rollout-providers.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: python-provider[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/rollout-providers.md lost its Python provider example"
    return match.group(1)


def test_docs_example_runs_and_equals_the_wrapped_provider(model):
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    namespace = {"model": model, "trace": trace}
    exec(compile(docs_example(), "docs/rollout-providers.md", "exec"), namespace)
    provider, result = namespace["provider"], namespace["result"]
    sentences = len(result.trace.sentences)
    assert sentences >= 3
    assert provider.continuations == 4 * sentences, "every rollout went through the Python provider"
    assert provider.name() == "counting:" + ta.LocalProvider(model).name

    # The wrapper is transparent: the same scores as the wrapped provider alone.
    direct = ta.Resampling(num_rollouts=4, provider=ta.LocalProvider(model), tokenizer=model,
                           max_tokens=64).run(trace)
    for name in ("resampling_importance_accuracy", "resampling_importance_kl", "counterfactual_importance_kl"):
        ours, theirs = result.attribution("resampling").score(name), direct.attribution("resampling").score(name)
        assert torch.allclose(ours, theirs, rtol=0, atol=0, equal_nan=True), name
    assert "counting:" in repr(ta.Resampling(num_rollouts=1, provider=provider, tokenizer=model))


def test_local_provider_text_prompts_and_message_arguments(model):
    local = ta.LocalProvider(model)
    text = "Solve: 2 + 3. First,"
    ids = model.tokenizer.encode(text, add_special_tokens=True).ids
    by_text = local.complete(prompt_text=text, n=3, temperature=1.0, max_tokens=8, seed=4)
    assert by_text == local.complete(ids, 3, temperature=1.0, max_tokens=8, seed=4)
    with pytest.raises(ta.Error, match="only as chat messages"):
        local.complete(messages=[("user", "hi")], n=1)
    with pytest.raises(ta.Error, match="presence_penalty"):
        local.complete(ids, 1, presence_penalty=0.5)
    with pytest.raises(ta.Error, match="messages"):
        local.complete(ids, 1, messages=[("user",)])
    with pytest.raises(ta.Error, match="messages"):
        local.complete(ids, 1, messages="user: hi")
    with pytest.raises(ta.Error, match="empty prompt"):
        local.complete(n=1)


def test_openai_provider_options():
    p = ta.OpenAIProvider("http://127.0.0.1:9", prompt_mode="chat", api_key_env="NO_SUCH_VARIABLE_SET")
    assert p.prompt_mode == "chat"
    with pytest.raises(ta.Error, match='prompt_mode "tokens"'):
        ta.OpenAIProvider("http://127.0.0.1:9", prompt_mode="tokens")
    # The prompt form a mode needs is checked before any network (nothing listens on port 9).
    with pytest.raises(ta.Error, match="no messages"):
        p.complete([1, 2], 1)
    with pytest.raises(ta.Error, match="no prompt_text"):
        ta.OpenAIProvider("http://127.0.0.1:9", prompt_mode="text").complete([1, 2], 1)


# ------------------------------------------------------- sampler vs transformers' processors

def hf_distribution(logits, history, *, temperature, top_p, top_k, min_p, repetition_penalty):
    """transformers' own pipeline for sampling: processors, then warpers in generate()'s order."""
    from transformers.generation import logits_process as lp

    processors = [lp.RepetitionPenaltyLogitsProcessor(repetition_penalty)] if repetition_penalty != 1 else []
    processors.append(lp.TemperatureLogitsWarper(temperature))
    if top_k:
        processors.append(lp.TopKLogitsWarper(top_k))
    if top_p < 1:
        processors.append(lp.TopPLogitsWarper(top_p))
    if min_p:
        processors.append(lp.MinPLogitsWarper(min_p))
    scores = logits.clone().unsqueeze(0)
    ids = torch.tensor([history])
    for proc in processors:
        scores = proc(ids, scores)
    return torch.softmax(scores[0].double(), -1)


@pytest.mark.parametrize("temperature,top_p,top_k,min_p,penalty", [
    (1.0, 1.0, 0, 0.3, 1.0),
    (0.7, 0.95, 0, 0.1, 1.0),
    (1.0, 1.0, 0, 0.0, 1.8),
    (0.8, 0.9, 20, 0.2, 1.3),
    (1.3, 0.97, 0, 0.05, 0.7),   # a penalty < 1 favours repeats
])
def test_next_token_distribution_equals_transformers(temperature, top_p, top_k, min_p, penalty):
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(TINY)).eval()
    ours = ta.Model.load(str(TINY))
    history = [11, 42, 7, 99, 3, 250, 18, 64, 42, 7]
    with torch.no_grad():
        logits = hf(torch.tensor([history])).logits[0, -1].float()
    expected = hf_distribution(logits, history, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                               repetition_penalty=penalty)
    got = ta.next_token_distribution(logits, history, temperature=temperature, top_p=top_p, top_k=top_k,
                                     min_p=min_p, repetition_penalty=penalty)
    kept = expected > 0
    assert torch.equal(got > 0, kept), f"kept sets differ: {int(kept.sum())} vs {int((got > 0).sum())}"
    if top_p < 1 or top_k or min_p:
        assert 1 < int(kept.sum()) < logits.numel(), "the case should truncate"
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5)
    # Our logits for the same ids agree with transformers', so the model-level draw sees this distribution.
    assert torch.allclose(ours.logits(torch.tensor(history))[-1], logits, atol=1e-4)


def test_greedy_with_repetition_penalty_equals_transformers_generate():
    """Temperature 0 + penalty: every step penalises prompt + tokens so far, as HF's greedy search does."""
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(TINY)).eval()
    ours = ta.Model.load(str(TINY))
    prompt = [11, 42, 7, 99, 3, 250, 18, 64]
    for penalty in (1.3, 3.0):
        with torch.no_grad():
            expected = hf.generate(torch.tensor([prompt]), do_sample=False, repetition_penalty=penalty,
                                   max_new_tokens=20, min_new_tokens=20, pad_token_id=0)[0, len(prompt):].tolist()
        [sample] = ours.sample(prompt, 1, temperature=0, repetition_penalty=penalty, max_new_tokens=20)
        assert sample.ids == expected, penalty
    plain = ours.sample(prompt, 1, temperature=0, max_new_tokens=20)[0].ids
    assert plain != expected, "the penalty should change the greedy path"


def test_min_p_first_token_frequencies_match_transformers():
    """Model.sample draws its first tokens from transformers' min-p distribution (4000 lanes, one seed):
    nothing outside the kept set; total variation below E[TV] + a McDiarmid margin (1e-6 false alarm)."""
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(TINY)).eval()
    ours = ta.Model.load(str(TINY))
    prompt = [11, 42, 7, 99, 3, 250, 18, 64]
    with torch.no_grad():
        logits = hf(torch.tensor([prompt])).logits[0, -1].float()
    q = hf_distribution(logits, prompt, temperature=1.5, top_p=1.0, top_k=0, min_p=0.2, repetition_penalty=1.0)
    assert int((q > 0).sum()) > 4, "want a non-trivial kept set"
    draws = 4000
    samples = ours.sample(prompt, draws, temperature=1.5, top_p=1.0, min_p=0.2, max_new_tokens=1, seed=9)
    counts = torch.bincount(torch.tensor([s.ids[0] for s in samples]), minlength=q.numel()).double()
    assert counts[q == 0].sum() == 0, "a token below min_p * p_max was drawn"
    tv = 0.5 * (counts / draws - q).abs().sum().item()
    bound = 0.5 * (q / draws).sqrt().sum().item() + (torch.log(torch.tensor(1e6)) / (2 * draws)).sqrt().item()
    print(f"[min-p first tokens] kept {int((q > 0).sum())}, TV {tv:.4f} (bound {bound:.4f})")
    assert tv < bound


class Wrapping(ta.RolloutProvider):
    """A user provider over ta.LocalProvider that can break the way real backends do."""

    def __init__(self, model, mode="ok"):
        super().__init__()
        self.local, self.mode = ta.LocalProvider(model), mode
        self.prompts = []

    def name(self):
        return f"wrapping:{self.mode}"

    def complete(self, prompt_ids, n, *, temperature, top_p, max_tokens, seed, prompt_text, messages, **extra):
        self.prompts.append((list(prompt_ids), prompt_text, messages))
        if self.mode == "raises":
            raise ConnectionError("backend is down")
        got = self.local.complete(prompt_ids, n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                  seed=seed)
        return got[:-1] if self.mode == "short" else got


def test_python_provider_through_the_engine_equals_the_local_provider(model, tmp_path):
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    options = dict(num_rollouts=3, batch=2, max_tokens=12, seed=4, similarity=constant_similarity, forced=True)
    mine = Wrapping(model)
    ta.Resampling(provider=mine, tokenizer=model, out_dir=str(tmp_path / "python"), **options).run(trace)
    ta.Resampling(provider=model, out_dir=str(tmp_path / "local"), **options).run(trace)
    files = {p.relative_to(tmp_path / "python"): p.read_bytes()
             for p in sorted((tmp_path / "python").glob("*/problem_*/chunk_*/solutions.json"))}
    assert files and files == {p.relative_to(tmp_path / "local"): p.read_bytes()
                               for p in sorted((tmp_path / "local").glob("*/problem_*/chunk_*/solutions.json"))}
    # Every request carries the prompt as ids, as the same text, and as chat messages.
    tokenizer = model.tokenizer
    for ids, text, messages in mine.prompts:
        assert tokenizer.encode(text).ids == ids
        assert messages[0] == {"role": "user", "content": "What is 2 + 3?"}
        assert messages[1]["role"] == "assistant" and text.endswith(messages[1]["content"])
    # The same provider drives interventions.
    edits = [ta.Delete(1), ta.Insert(0, "Wait.")]
    a = ta.intervene(trace, Wrapping(model), edits, tokenizer=model, num_rollouts=3, max_tokens=12)
    b = ta.intervene(trace, model, edits, num_rollouts=3, max_tokens=12)
    assert [e["labels"] for e in a.edits] == [e["labels"] for e in b.edits]


def test_a_broken_python_provider_is_a_clear_error(model, tmp_path):
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    options = dict(num_rollouts=2, max_tokens=8, similarity=constant_similarity)
    with pytest.raises(ta.Error, match="every request to wrapping:raises failed.*backend is down"):
        ta.Resampling(provider=Wrapping(model, "raises"), tokenizer=model, **options).run(trace)
    with pytest.raises(ta.Error, match="completions"):
        ta.Resampling(provider=Wrapping(model, "short"), tokenizer=model, **options).run(trace)
    with pytest.raises(ta.Error, match="backend is down"):
        ta.intervene(trace, Wrapping(model, "raises"), [ta.Delete(1)], tokenizer=model, num_rollouts=2)


def test_provider_pool_fails_over_and_reports_each_member():
    """ta.ProviderPool over Python members: a member that raises is routed around (its request answered by
    the other with the same lanes), it sits out its cooldown, status() says so; URLs make OpenAIProviders."""

    class Echo(ta.RolloutProvider):
        def __init__(self, label):
            super().__init__()
            self.label, self.calls = label, 0

        def name(self):
            return self.label

        def complete(self, prompt_ids, n, *, seed, **fields):
            self.calls += 1
            return [ta.Completion(ids=[], text=f"{seed}:{k}", finish_reason="stop") for k in range(n)]

    class Dead(Echo):
        def complete(self, prompt_ids, n, **fields):
            self.calls += 1
            raise ta.Error("connection refused")

    dead, alive = Dead("dead"), Echo("alive")
    pool = ta.ProviderPool([dead, alive], concurrency=1, cooldown=60)
    assert pool.name == "pool[dead, alive]"
    texts = [[c.text for c in pool.complete([1, 2, 3], 2, seed=s)] for s in range(4)]
    assert texts == [[f"{s}:0", f"{s}:1"] for s in range(4)]   # every request answered, lanes intact
    assert dead.calls == 1 and alive.calls == 4                 # the dead member sat out its cooldown
    status = {s["name"]: s for s in pool.status()}
    assert status["dead"]["failures"] == 1 and not status["dead"]["healthy"] and status["dead"]["cooldown_left"] > 50
    assert status["alive"]["requests"] == 4 and status["alive"]["healthy"]

    both_dead = ta.ProviderPool([Dead("a"), Dead("b")])
    with pytest.raises(ta.Error, match="(?s)every member failed for this request: a: .*connection refused.*; b:"):
        both_dead.complete([1], 1)
    urls = ta.ProviderPool(["http://127.0.0.1:9", "http://127.0.0.1:10"], model="m")
    assert urls.name == "pool[openai:http://127.0.0.1:9 (m), openai:http://127.0.0.1:10 (m)]"
    with pytest.raises(ta.Error, match="members must be ta.RolloutProvider objects or server URLs"):
        ta.ProviderPool([3])
    with pytest.raises(ta.Error, match="no members|at least one"):
        ta.ProviderPool([])
