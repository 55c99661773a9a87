"""The white-box methods against slow references built on transformers' own models.

Every reference here materialises the full T×T attention of a Hugging Face model
(eager attention, float64) and applies the method's definition (docs/design.md §3)
literally, with loops and full sorts: suppression (an attention function that
sets the sentence's key columns to the lowest finite value before the softmax),
receiver heads (block means -> vertical scores -> scipy kurtosis -> top-k) and
the preplan-and-anchor rhythm (head spans, WAAD, FAI, token sets, gamma). The
models are random tiny checkpoints of every supported decoder family.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import thought_anchors as ta

FAMILIES = ["llama", "qwen2", "qwen3", "mistral", "qwen3_moe", "smollm3", "phi3", "olmo3", "mistral_window"]


def make_model(family: str, path, *, layers=4, heads=4, kv_heads=2, vocab=160, peaked=False):
    import transformers

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
                  tie_word_embeddings=False)
    if family == "llama":
        config = transformers.LlamaConfig(**common)
        cls = transformers.LlamaForCausalLM
    elif family == "qwen2":
        config = transformers.Qwen2Config(**common)
        cls = transformers.Qwen2ForCausalLM
    elif family == "qwen3":
        config = transformers.Qwen3Config(head_dim=16, **common)
        cls = transformers.Qwen3ForCausalLM
    elif family == "mistral":
        config = transformers.MistralConfig(head_dim=32, sliding_window=None, **common)
        cls = transformers.MistralForCausalLM
    elif family == "qwen3_moe":  # routed experts on layers 0, 2, ... (decoder_sparse_step 2 counts from 1)
        config = transformers.Qwen3MoeConfig(head_dim=16, num_experts=6, num_experts_per_tok=2,
                                             moe_intermediate_size=32, norm_topk_prob=True, decoder_sparse_step=1,
                                             mlp_only_layers=[1], **common)
        cls = transformers.Qwen3MoeForCausalLM
    elif family == "olmo3":  # norms after each sublayer; every layer but each fourth slides within 16 slots
        config = transformers.Olmo3Config(sliding_window=16, attention_bias=True, pad_token_id=None,
                                          eos_token_id=None, **common)
        cls = transformers.Olmo3ForCausalLM
    elif family == "mistral_window":  # every layer attends within 12 slots
        config = transformers.MistralConfig(sliding_window=12, **common)
        cls = transformers.MistralForCausalLM
    elif family == "phi3":  # fused qkv / gate-up weights
        config = transformers.Phi3Config(pad_token_id=None, bos_token_id=None, eos_token_id=None, **common)
        cls = transformers.Phi3ForCausalLM
    else:  # smollm3: every other layer without RoPE
        config = transformers.SmolLM3Config(no_rope_layer_interval=2, pad_token_id=None, bos_token_id=None,
                                            eos_token_id=None, **common)
        cls = transformers.SmolLM3ForCausalLM
    torch.manual_seed(FAMILIES.index(family) + 11)
    model = cls(config)
    if family == "qwen3_moe":
        model.set_experts_implementation("eager")  # the float64 reference: grouped_mm takes no doubles
    if peaked:  # next-token distributions with a clear head, as a trained model has
        with torch.no_grad():
            model.lm_head.weight.mul_(25.0)
    model.save_pretrained(path, safe_serialization=True)
    return model.eval().double()


def hf_reference(path):
    """The checkpoint at `path` in transformers, float64, eager attention (and eager experts: grouped_mm takes no
    doubles)."""
    import transformers

    hf = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    if hf.config.model_type == "qwen3_moe":
        hf.set_experts_implementation("eager")
    return hf.eval().double()


# ---------------------------------------------------------------------------
# Attention suppression
# ---------------------------------------------------------------------------

_SUPPRESSED = {"span": None}


def _suppressing_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, sliding_window=None,
                           **kwargs):
    """Eager attention with explicit masking: the suppressed key columns get the lowest finite value; keys the
    layer's window leaves behind (slot <= query - window) are invisible like future ones."""
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    T = scores.shape[-1]
    if _SUPPRESSED["span"] is not None:
        begin, end = _SUPPRESSED["span"]
        scores[..., begin:end] = torch.finfo(scores.dtype).min
    invisible = torch.ones(T, T, dtype=torch.bool).triu(1)
    if sliding_window is not None:
        invisible |= torch.ones(T, T, dtype=torch.bool).tril(-sliding_window)
    scores = scores.masked_fill(invisible, -math.inf)
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def reference_log_kl(base_logits, supp_logits, temperature=0.6, top_p=0.9999, max_kept=100):
    """Per position log(KL + 1e-9) by the literal rule: full sort, cumulative sum, union, -1e9 fill."""
    out = []
    for b, s in zip(base_logits, supp_logits):
        kept = []
        for logits in (b, s):
            probs = torch.softmax(logits / temperature, dim=-1)
            order = torch.argsort(probs, descending=True)
            cumulative = torch.cumsum(probs[order], dim=0)
            k = int((cumulative >= top_p).nonzero()[0]) + 1 if (cumulative >= top_p).any() else len(order)
            k = max(1, min(k, max_kept))
            kept.append(set(order[:k].tolist()))
        union = sorted(kept[0] | kept[1])
        sides = []
        for logits, keep in zip((b, s), kept):
            values = torch.tensor([logits[t].item() if t in keep else -1e9 for t in union], dtype=torch.float64)
            sides.append(torch.log_softmax(values / temperature, dim=-1))
        kl = max(0.0, float((sides[0].exp() * (sides[0] - sides[1])).sum()))
        out.append(math.log(kl + 1e-9))
    return torch.tensor(out, dtype=torch.float64)


def reference_suppression_matrix(hf, ids, spans):
    from transformers import AttentionInterface

    AttentionInterface.register("anchors_test_suppress", _suppressing_attention)
    hf.set_attn_implementation("anchors_test_suppress")
    x = torch.tensor([ids])
    with torch.no_grad():
        _SUPPRESSED["span"] = None
        base = hf(x).logits[0]
        S = len(spans)
        matrix = torch.empty(S, S, dtype=torch.float64)
        for i, span in enumerate(spans):
            _SUPPRESSED["span"] = span
            values = reference_log_kl(base, hf(x).logits[0])
            for j, (b, e) in enumerate(spans):
                matrix[j, i] = values[b:e].mean()
    _SUPPRESSED["span"] = None
    return matrix


@pytest.mark.parametrize("family", FAMILIES)
def test_suppression_matrix_matches_explicit_masking(family, tmp_path):
    hf = make_model(family, tmp_path, peaked=True)
    torch.manual_seed(5)
    ids = torch.randint(0, 160, (48,)).tolist()
    spans = [(0, 6), (6, 15), (17, 26), (26, 38), (38, 48)]  # a gap at 15..17
    expected = reference_suppression_matrix(hf, ids, spans)
    model = ta.Model.load(str(tmp_path))
    got = ta.suppression_matrix(model, ids, spans)
    assert got.shape == (5, 5)
    # Rows before the suppressed sentence are untouched: exactly log(1e-9).
    for j in range(5):
        for i in range(j + 1, 5):
            assert got[j, i].item() == math.log(1e-9)
    assert (got.double() - expected).abs().max().item() < 1e-4
    # The batched, prefix-reusing path equals independent full passes.
    independent = ta.suppression_matrix(model, ids, spans, batch_lanes=1, reuse_prefix=False)
    assert (got.double() - independent.double()).abs().max().item() < 1e-4

    centred = ta.centre_suppression_matrix(got)
    for j in range(5):
        for i in range(5):
            if j <= i:
                assert math.isnan(centred[j, i])
        row = centred[j, :j]
        if j > 0:
            assert abs(row.mean().item()) < 1e-9


# ---------------------------------------------------------------------------
# Receiver heads
# ---------------------------------------------------------------------------


def block_means(attentions, spans):
    """[L, H, S, S] float64 block means (all token pairs of the block, masked ones as 0)."""
    out = []
    for a in attentions:
        a = a[0].double()
        m = torch.zeros(a.shape[0], len(spans), len(spans), dtype=torch.float64)
        for i, (qb, qe) in enumerate(spans):
            for j, (kb, ke) in enumerate(spans):
                m[:, i, j] = a[:, qb:qe, kb:ke].sum(dim=(1, 2)) / ((qe - qb) * (ke - kb))
        out.append(m)
    return torch.stack(out)


def nanmean_rows(rows):
    """Mean over heads, NaN skipped; NaN (quietly) where every head is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(rows), axis=0)


def reference_vertical(m, proximity_ignore):
    S = m.shape[-1]
    v = np.full(S, np.nan)
    for j in range(S):
        rows = [m[i, j] for i in range(j + proximity_ignore, S)]
        if rows:
            v[j] = float(np.mean(rows))
    return v


def test_receiver_heads_match_scipy_reference(tmp_path):
    from scipy.stats import kurtosis
    from transformers import LlamaForCausalLM

    make_model("llama", tmp_path, layers=4, heads=4)
    hf = LlamaForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval().double()
    torch.manual_seed(9)
    traces = []
    for T in (70, 90):
        ids = torch.randint(0, 160, (T,)).tolist()
        cuts = sorted(torch.randperm(T - 2)[:9].add(1).tolist())
        bounds = [0] + cuts + [T]
        traces.append((ids, [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]))

    kurt = np.zeros((4, 4))
    verticals = []
    for ids, spans in traces:
        with torch.no_grad():
            attentions = hf(torch.tensor([ids]), output_attentions=True).attentions
        means = block_means(attentions, spans).numpy()
        v = np.stack([[reference_vertical(means[l, h], 4) for h in range(4)] for l in range(4)])
        verticals.append(v)
        kurt += np.array([[kurtosis(v[l, h], fisher=True, bias=True, nan_policy="omit") for h in range(4)]
                          for l in range(4)])
    kurt /= len(traces)
    candidates = [(kurt[l, h], l, h) for l in range(1, 4) for h in range(4)]
    top = sorted(candidates, key=lambda c: -c[0])[:3]

    model = ta.Model.load(str(tmp_path))
    got = ta.receiver_heads(model, traces, top_k=3)
    assert np.allclose(got["kurtosis"].numpy(), kurt, atol=1e-4)
    assert [(l, h) for _, l, h in top] == [(l, h) for l, h, _ in got["heads"]]
    for t, v in enumerate(verticals):
        expected = nanmean_rows([v[l, h] for _, l, h in top])
        assert np.allclose(got["sentence_scores"][t].numpy(), expected, atol=1e-5, equal_nan=True)
        assert np.allclose(got["vertical"][t].numpy(), v.reshape(16, -1), atol=1e-5, equal_nan=True)

    # User-given heads replace the selection.
    chosen = ta.receiver_heads(model, traces[:1], heads=[(2, 1), (3, 0)])
    assert [(l, h) for l, h, _ in chosen["heads"]] == [(2, 1), (3, 0)]
    expected = nanmean_rows([verticals[0][2, 1], verticals[0][3, 0]])
    assert np.allclose(chosen["sentence_scores"][0].numpy(), expected, atol=1e-5, equal_nan=True)


# ---------------------------------------------------------------------------
# Attention rhythm (WAAD / FAI)
# ---------------------------------------------------------------------------


def reference_rhythm(attentions, layers, response_begin, W=10, near=10, far=100, fraction=0.3, top=0.4, gamma=1.5):
    T = attentions[0].shape[-1]
    t_idx = torch.arange(T, dtype=torch.float64)
    distance = t_idx[:, None] - t_idx[None, :]  # t - s
    spans, heads = [], []
    per_head = {}
    for l in layers:
        a = attentions[l][0].double()  # [H, T, T]
        for h in range(a.shape[0]):
            A = a[h]
            rows = (A * distance.clamp(min=0)).sum(-1)[response_begin:]
            spans.append(rows.mean().item())
            heads.append((l, h))
            per_head[(l, h)] = A
    order = sorted(range(len(heads)), key=lambda k: (spans[k], heads[k]))
    n = max(1, round(fraction * len(heads)))
    local = [heads[k] for k in order[:n]]
    global_ = [heads[k] for k in order[::-1][:n]]
    A_loc = torch.stack([per_head[h] for h in local]).mean(0)
    A_glob = torch.stack([per_head[h] for h in global_]).mean(0)
    waad = (A_loc * distance.clamp(min=0, max=W)).sum(-1)
    fai = torch.full((T,), float("nan"), dtype=torch.float64)
    for s in range(T):
        ts = [t for t in range(s + near, min(s + far, T - 1) + 1)]
        if ts:
            fai[s] = A_glob[ts, s].mean()
    credit = reference_credit(waad.tolist(), fai.tolist(), response_begin, "union", top=top, gamma=gamma)
    return dict(spans=torch.tensor(spans, dtype=torch.float64).view(len(layers), -1), local=local, global_=global_,
                waad=waad, fai=fai, delta=torch.tensor(credit["delta"], dtype=torch.float64),
                preplan=credit["preplan"], anchor=credit["anchor"],
                gamma=torch.tensor(credit["gamma"], dtype=torch.float64))


def reference_credit(waad, fai, begin, strategy, *, top=0.4, gamma=1.5, k=3, alpha=0.5, tau_waad=-1.0,
                     tau_delta=-1.0, float32=False):
    """The credit strategies of docs/attention-rhythm.md, written out slowly from their definitions
    (arXiv 2510.13554 v2 Eqs. 14-19): Δ_t = |WAAD_t - WAAD_{t+1}|; the top round(top * n) response tokens by
    Δ (preplan) and by FAI (anchor), ties to the earlier token; union / preplan / anchor put gamma on those
    sets; coupled moves alpha of a dominated anchor's bonus to the earliest largest-Δ token among the k
    before it. float32: Δ computed in float32, as the library stores the curves."""
    T = len(waad)
    finite = lambda x: not math.isnan(x)  # noqa: E731
    delta = [0.0] * T
    for t in range(begin, T - 1):
        delta[t] = float(abs(np.float32(waad[t]) - np.float32(waad[t + 1]))) if float32 else abs(waad[t] - waad[t + 1])
    delta[T - 1] = float("nan")
    resp = range(begin, T)
    n = max(1, math.floor(top * len(resp) + 0.5))

    def top_set(values):
        order = sorted((t for t in resp if finite(values[t])), key=lambda t: (-values[t], t))
        return set(order[:n])

    preplan, anchor = top_set(delta), top_set(fai)
    dominated, intro = set(), set()
    g = [1.0] * T
    if strategy == "coupled":
        median = lambda xs: float(np.median(xs)) if xs else 0.0  # noqa: E731
        tw = tau_waad if tau_waad >= 0 else median([waad[t] for t in resp if finite(waad[t])])
        td = tau_delta if tau_delta >= 0 else median([delta[t] for t in resp if finite(delta[t])])
        for t in sorted(anchor):
            before = [u for u in range(max(begin, t - k), t) if finite(delta[u])]
            if waad[t] <= tw and before:
                best = max(before, key=lambda u: (delta[u], -u))
                if delta[best] >= td:
                    dominated.add(t)
                    intro.add(best)
    for t in resp:
        if strategy == "union":
            g[t] = gamma if (t in preplan or t in anchor) else 1.0
        elif strategy == "preplan":
            g[t] = gamma if t in preplan else 1.0
        elif strategy == "anchor":
            g[t] = gamma if t in anchor else 1.0
        else:
            w = 1.0
            if t in anchor:
                w += (1 - alpha) * (gamma - 1) if t in dominated else gamma - 1
            if t in intro:
                w += alpha * (gamma - 1)
            g[t] = w
    return dict(delta=delta, preplan=preplan, anchor=anchor, dominated=dominated, intro=intro, gamma=g)


STRATEGIES = ["union", "preplan", "anchor", "coupled"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rhythm_credit_matches_the_definitions_on_random_curves(strategy):
    """ta.rhythm_credit (what attention_rhythm does after its pass) against the slow reference, on random curves
    with ties (values drawn from a few levels) and undefined FAI, for several parameter settings."""
    rng = np.random.default_rng(7)
    for trial in range(60):
        T = int(rng.integers(2, 40))
        begin = int(rng.integers(0, T))
        levels = rng.random(int(rng.integers(2, 6))).astype(np.float32)
        waad = torch.tensor(rng.choice(levels, T) * 10, dtype=torch.float32)
        fai = torch.tensor(rng.choice(levels, T), dtype=torch.float32)
        fai[T - int(rng.integers(0, min(T, 5)) + 1):] = float("nan")
        params = dict(top=float(rng.choice([0.2, 0.4, 1.0])), gamma=float(rng.choice([1.5, 2.0])),
                      k=int(rng.integers(1, 4)), alpha=float(rng.choice([0.0, 0.5, 1.0])),
                      tau_waad=float(rng.choice([-1.0, 3.0])), tau_delta=float(rng.choice([-1.0, 0.1])))
        got = ta.rhythm_credit(waad, fai, response_begin=begin, credit=strategy, top_fraction=params["top"],
                               gamma=params["gamma"], coupled_k=params["k"], coupled_alpha=params["alpha"],
                               tau_waad=params["tau_waad"], tau_delta=params["tau_delta"])
        want = reference_credit(waad.tolist(), fai.tolist(), begin, strategy, float32=True, **params)
        where = f"trial {trial}: T={T} begin={begin} {params}"
        assert torch.allclose(got["waad_delta"].double(), torch.tensor(want["delta"], dtype=torch.float64),
                              equal_nan=True), where
        for name in ("preplan", "anchor", "dominated", "intro"):
            assert set(torch.nonzero(got[name]).flatten().tolist()) == want[name], f"{name}, {where}"
        assert torch.allclose(got["gamma"].double(), torch.tensor(want["gamma"], dtype=torch.float64)), where


def test_rhythm_credit_errors_name_the_option():
    curve = torch.ones(5)
    with pytest.raises(ta.Error, match="credit must be union, preplan, anchor or coupled"):
        ta.rhythm_credit(curve, curve, credit="both")
    with pytest.raises(ta.Error, match="coupled_alpha must be in"):
        ta.rhythm_credit(curve, curve, coupled_alpha=1.5)
    with pytest.raises(ta.Error, match="coupled_k must be >= 1"):
        ta.rhythm_credit(curve, curve, coupled_k=0)
    with pytest.raises(ta.Error, match="one length"):
        ta.rhythm_credit(curve, torch.ones(4))


@pytest.mark.parametrize("family", FAMILIES)
def test_token_weights_of_a_padded_batch_match_explicit_attention(family, tmp_path):
    """ta.token_weights on a padded batch (left-padded prompts, right-padded responses) equals, row by row and
    for each strategy, the reference credit computed from transformers' explicit T×T attention of the row's
    real tokens; padding gets weight 1; lists, NumPy and tensors give the same."""
    import transformers

    make_model(family, tmp_path, layers=6, heads=4)
    hf = hf_reference(tmp_path)
    model = ta.Model.load(str(tmp_path))
    torch.manual_seed(5)
    rows = [(torch.randint(0, 160, (p,)).tolist(), torch.randint(0, 160, (r,)).tolist()) for p, r in [(9, 60), (14, 75)]]
    P, R = max(len(p) for p, _ in rows), max(len(r) for _, r in rows)
    prompt = torch.zeros((2, P), dtype=torch.int32)
    pmask = torch.zeros((2, P), dtype=torch.int64)
    response = torch.zeros((2, R), dtype=torch.int64)
    rmask = torch.zeros((2, R), dtype=torch.bool)
    for b, (p, r) in enumerate(rows):
        prompt[b, P - len(p):] = torch.tensor(p)   # left-padded, as generation batches hold prompts
        pmask[b, P - len(p):] = 1
        response[b, :len(r)] = torch.tensor(r)
        rmask[b, :len(r)] = True
    references = []
    for p, r in rows:
        with torch.no_grad():
            attentions = hf(torch.tensor([p + r]), output_attentions=True).attentions
        references.append(reference_rhythm(attentions, layers=[2, 3], response_begin=len(p)))
    for strategy in STRATEGIES:
        got = ta.token_weights(model, prompt, response, prompt_mask=pmask, response_mask=rmask, strategy=strategy)
        assert got.shape == (2, R) and got.dtype == torch.float32
        for b, (p, r) in enumerate(rows):
            ref = references[b]
            want = reference_credit(ref["waad"].tolist(), ref["fai"].tolist(), len(p), strategy)["gamma"][len(p):]
            assert torch.allclose(got[b, :len(r)].double(), torch.tensor(want, dtype=torch.float64)), (strategy, b)
            assert torch.all(got[b, len(r):] == 1.0)
        if strategy == "coupled":
            lists = ta.token_weights(model, [p for p, _ in rows], [r for _, r in rows], strategy=strategy)
            assert torch.equal(lists, got)
            arrays = ta.token_weights(model, prompt.numpy(), response.numpy(), prompt_mask=pmask.numpy(),
                                      response_mask=rmask.numpy(), strategy=strategy)
            assert torch.equal(arrays, got)
    with pytest.raises(ta.Error, match="row 1 has no response tokens"):
        ta.token_weights(model, prompt, response, response_mask=torch.tensor([[1] * R, [0] * R]))
    with pytest.raises(ta.Error, match="credit"):
        ta.token_weights(model, prompt, response, strategy="everything")
    with pytest.raises(ta.Error, match="unknown option.*gama"):
        ta.token_weights(model, prompt, response, gama=2.0)
    with pytest.raises(ta.Error, match="2-D"):
        ta.token_weights(model, prompt[0], response)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_rhythm_matches_explicit_attention(family, tmp_path):
    import transformers

    make_model(family, tmp_path, layers=6, heads=4)
    hf = hf_reference(tmp_path)
    torch.manual_seed(21)
    ids = torch.randint(0, 160, (150,)).tolist()
    with torch.no_grad():
        attentions = hf(torch.tensor([ids]), output_attentions=True).attentions
    expected = reference_rhythm(attentions, layers=[2, 3], response_begin=20)

    model = ta.Model.load(str(tmp_path))
    got = ta.attention_rhythm(model, ids, response_begin=20)
    assert got["layers"] == [2, 3]  # the middle third of 6 layers
    assert torch.allclose(got["head_span"].double(), expected["spans"], atol=1e-4)
    assert got["local_heads"] == expected["local"]
    assert got["global_heads"] == expected["global_"]
    assert torch.allclose(got["waad"].double(), expected["waad"], atol=1e-5)
    assert torch.allclose(got["fai"].double(), expected["fai"], atol=1e-5, equal_nan=True)
    assert torch.allclose(got["waad_delta"].double(), expected["delta"], atol=1e-5, equal_nan=True)
    assert set(torch.nonzero(got["preplan"]).flatten().tolist()) == expected["preplan"]
    assert set(torch.nonzero(got["anchor"]).flatten().tolist()) == expected["anchor"]
    assert torch.allclose(got["gamma"].double(), expected["gamma"])


# ---------------------------------------------------------------------------
# Method objects, results and errors
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_with_tokenizer(tmp_path_factory):
    import shutil

    from conftest import REPO

    path = tmp_path_factory.mktemp("qwen2_tok")
    make_model("qwen2", path, layers=3, heads=4, vocab=1024)
    shutil.copy(REPO / "tests" / "data" / "tokenizers" / "qwen2" / "tokenizer.json", path / "tokenizer.json")
    return path


REASONING = (
    "First, I restate the problem. We need the sum of 12 and 30. Then I add them: 12 + 30 = 42. "
    "Wait, let me check that again. Yes, 42 is right.\n\nSo the answer is \\boxed{42}."
)


def test_method_objects_run_on_a_trace(tiny_model_with_tokenizer, tmp_path):
    model = ta.Model.load(str(tiny_model_with_tokenizer))
    trace = ta.Trace.from_text(REASONING, prompt="Problem: add 12 and 30. Solution: \n<think>\n")
    assert len(trace.sentences) >= 4
    ids, spans = ta.tokenize_trace(model.tokenizer, trace)
    assert len(spans) == len(trace.sentences)

    result = ta.ReceiverHeads(top_k=2, proximity_ignore=1).run(model, trace)
    direct = ta.receiver_heads(model, [(ids, spans)], top_k=2, proximity_ignore=1)
    assert torch.allclose(result.attribution("receiver_heads").score("receiver_score"),
                          direct["sentence_scores"][0], equal_nan=True)

    seen = []
    result = ta.AttentionSuppression(temperature=1).run(model, trace, progress=lambda *a: seen.append(a), into=result)
    assert result.methods == ["receiver_heads", "attention_suppression"]
    assert seen and seen[-1][0] == seen[-1][1]
    raw = ta.suppression_matrix(model, ids, spans, temperature=1.0)
    assert torch.allclose(result.attribution("attention_suppression").matrix("suppression_raw"), raw.double())

    ta.AttentionRhythm(layers=[1], fai_far=30).run(model, trace, into=result)
    ta.SentenceAttention().run(model, trace, into=result)
    path = tmp_path / "result.json"
    result.save(str(path))
    assert ta.load_result(str(path)) == result
    assert "attention_suppression" in result._repr_html_()

    # Explicit ids and spans instead of the tokenizer.
    explicit = ta.SentenceAttention().run(model, trace, token_ids=ids, sentence_spans=spans)
    assert explicit.attribution("sentence_attention") == result.attribution("sentence_attention")


def test_method_registry_lists_white_box_methods():
    names = {m.name for m in ta.methods()}
    assert {"sentence_attention", "receiver_heads", "attention_suppression", "attention_rhythm"} <= names


def test_bad_input_is_a_clear_error(tiny_model_with_tokenizer):
    model = ta.Model.load(str(tiny_model_with_tokenizer))
    ids = list(range(30))
    bad_spans = ([], [(5, 3)], [(0, 10), (5, 15)], [(10, 15), (0, 5)], [(0, 40)])
    for spans in bad_spans:
        with pytest.raises(ta.Error):
            ta.suppression_matrix(model, ids, spans)
        with pytest.raises(ta.Error):
            ta.receiver_heads(model, [(ids, spans)])
    with pytest.raises(ta.Error, match="empty"):
        ta.suppression_matrix(model, [], [(0, 1)])
    with pytest.raises(ta.Error, match="max_position_embeddings"):
        ta.suppression_matrix(model, [1] * 300, [(0, 10)])
    with pytest.raises(ta.Error, match="top_p"):
        ta.suppression_matrix(model, ids, [(0, 10)], top_p=1.5)
    with pytest.raises(ta.Error):
        ta.attention_rhythm(model, ids, local_fraction=0.0)
    with pytest.raises(ta.Error, match="unknown option"):
        ta.ReceiverHeads(top_n=3)
    trace = ta.Trace.from_text(REASONING)
    with pytest.raises(ta.Error, match="both"):
        ta.ReceiverHeads().run(model, trace, token_ids=ids)


def test_cli_runs_white_box_methods_into_one_result(anchors_cli, tiny_model_with_tokenizer, tmp_path):
    import json
    import subprocess

    text = tmp_path / "reasoning.txt"
    text.write_text(REASONING, encoding="utf-8")
    out = tmp_path / "result.json"
    run = subprocess.run([anchors_cli, "suppression", "--model", str(tiny_model_with_tokenizer), "--text", str(text),
                          "--problem", "Add 12 and 30.", "--out", str(out), "--batch_lanes", "2"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "top sentences by suppression_effect" in run.stdout
    assert "sentences" in run.stderr  # progress
    run = subprocess.run([anchors_cli, "run", "receiver_heads", "--model", str(tiny_model_with_tokenizer),
                          "--result", str(out), "--top_k", "3", "--heads", "1:0,2:3", "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = ta.load_result(str(out))
    assert result.methods == ["attention_suppression", "receiver_heads"]
    # List options travel as integer lists (heads as flat pairs), the same from the CLI as from Python.
    assert result.attribution("receiver_heads").options["heads"] == [1, 0, 2, 3]
    assert result.attribution("receiver_heads").metadata["receiver_heads"] == "1:0,2:3"
    assert result.attribution("attention_suppression").options["batch_lanes"] == 2
    # The CLI's numbers are the library's numbers.
    model = ta.Model.load(str(tiny_model_with_tokenizer))
    ids, spans = ta.tokenize_trace(model.tokenizer, result.trace)
    raw = ta.suppression_matrix(model, ids, spans)
    assert torch.allclose(result.attribution("attention_suppression").matrix("suppression_raw"), raw.double())
    assert json.loads(out.read_text())["format"] == "thought-anchors/result"

    bad = subprocess.run([anchors_cli, "rhythm", "--model", str(tiny_model_with_tokenizer), "--result", str(out),
                          "--top_fraction", "many"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--top_fraction expects a number" in bad.stderr
    bad = subprocess.run([anchors_cli, "rhythm", "--model", str(tiny_model_with_tokenizer), "--result", str(out),
                          "--layers", "1,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--layers expects a list of integers" in bad.stderr
    missing = subprocess.run([anchors_cli, "rhythm", "--model", str(tiny_model_with_tokenizer)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "missing input" in missing.stderr


def test_sentence_scores_become_token_weights():
    """Each token of tokenize_trace's ids holds its sentence's score; prompt tokens, tokens between sentences
    and NaN scores hold fill; a result's score series can be named."""
    model = ta.load_embedded_model()
    text = "Alright, so Leo buys 4 dozen donuts. A dozen is 12. So 4 times 12 is 48. The answer is 48."
    trace = ta.Trace.from_text(text, prompt="Problem: donuts. Solution: ")
    ids, spans = ta.tokenize_trace(model.tokenizer, trace)
    S = len(spans)
    scores = [float(i + 2) for i in range(S)]
    scores[1] = float("nan")
    got = ta.sentence_scores_to_token_weights(trace, np.array(scores), model, fill=0.5)
    want = [0.5] * len(ids)
    for (begin, end), score in zip(spans, scores):
        for t in range(begin, end):
            want[t] = 0.5 if math.isnan(score) else score
    assert got.dtype == torch.float32 and got.tolist() == want
    assert got[: spans[0][0]].eq(0.5).all()  # the prompt
    result = ta.AnalysisResult(trace, [])
    with pytest.raises(ta.Error, match="no score 'importance'"):
        ta.sentence_scores_to_token_weights(result, "importance", model)
    with pytest.raises(ta.Error, match=f"2 scores for {S} sentences"):
        ta.sentence_scores_to_token_weights(trace, [1.0, 2.0], model)
    rhythm = ta.AttentionRhythm().run(model, trace)
    named = ta.sentence_scores_to_token_weights(rhythm, "attention_rhythm.gamma", model)
    direct = ta.sentence_scores_to_token_weights(trace, rhythm.attribution("attention_rhythm").scores["gamma"], model)
    assert torch.equal(named, direct)
