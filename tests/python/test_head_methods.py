"""The methods built on AttentionControl (docs/attention-control.md): head influence against a slow reference
(one masked forward pass per head, written here), and receiver-head ablation on the embedded model, whose
greedy rollouts must equal the provider's greedy completion under the same control."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch

import thought_anchors as ta
from make_lm_fixtures import random_tiny_model, tiny_config

SIZES = dict(hidden=64, layers=3, intermediate=128, vocab=300, max_positions=256)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("head-influence")
    random_tiny_model(tiny_config("llama", **SIZES, heads=4, kv_heads=2, tie=False), 41).save_pretrained(folder)
    return ta.Model.load(str(folder))


def token_nll(model, ids, control=None):
    logits = model.logits(torch.tensor(ids), control=control).double()
    log_probs = torch.log_softmax(logits, -1)
    nll = torch.full((len(ids),), math.nan, dtype=torch.float64)
    nll[1:] = -log_probs[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return nll


def reference_influence(model, texts, scored, layers):
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    out = torch.full((L, H), math.nan, dtype=torch.float64)
    for layer in layers:
        for head in range(H):
            total = 0.0
            for ids, (begin, end) in zip(texts, scored):
                control = ta.AttentionControl().ablate_heads(layer, [head])
                diff = token_nll(model, ids, control) - token_nll(model, ids)
                total += diff[max(begin, 1):end].mean().item()
            out[layer, head] = total / len(texts)
    return out


def test_head_influence_equals_one_masked_pass_per_head(tiny):
    generator = torch.Generator().manual_seed(5)
    texts = [torch.randint(0, 300, (n,), generator=generator).tolist() for n in (40, 23)]
    scored = [(10, 40), (0, 23)]
    got = ta.head_influence(tiny, texts, scored=scored, batch_lanes=5)  # 12 heads: lanes 5, 5, 2
    expected = reference_influence(tiny, texts, scored, layers=[0, 1, 2])
    assert got.influence.shape == (3, 4) and got.influence.dtype == torch.float64
    assert torch.allclose(got.influence, expected, atol=1e-5), (got.influence, expected)
    assert (got.influence.abs() > 1e-4).any()  # ablating heads of a random model changes its predictions
    # Per token: the plain loss and the masked difference of one head.
    assert torch.allclose(got.plain_loss[0][10:], token_nll(tiny, texts[0])[10:], atol=1e-5)
    assert torch.isnan(got.plain_loss[0][:10]).all()
    delta = token_nll(tiny, texts[1], ta.AttentionControl().ablate_heads(2, [3])) - token_nll(tiny, texts[1])
    assert torch.allclose(got.token_delta[1][2, 3, 1:].double(), delta[1:], atol=1e-4)

    # Only some layers; a padded 2-D batch with a mask equals the lists.
    some = ta.head_influence(tiny, texts, layers=[1], batch_lanes=3)
    assert torch.isnan(some.influence[0]).all() and torch.isnan(some.influence[2]).all()
    assert torch.allclose(some.influence[1], reference_influence(tiny, texts, [(0, 40), (0, 23)], [1])[1], atol=1e-5)
    padded = torch.zeros((2, 40), dtype=torch.int64)
    mask = torch.zeros((2, 40), dtype=torch.int64)
    padded[0] = torch.tensor(texts[0])
    padded[1, 17:] = torch.tensor(texts[1])  # left-padded
    mask[0] = 1
    mask[1, 17:] = 1
    batched = ta.head_influence(tiny, padded, mask=mask, layers=[1], batch_lanes=3)
    assert torch.allclose(batched.influence[1], some.influence[1], atol=1e-7)


def test_head_influence_errors(tiny):
    with pytest.raises(ta.Error, match="no texts"):
        ta.head_influence(tiny, [])
    with pytest.raises(ta.Error, match="text 0 has 1 tokens"):
        ta.head_influence(tiny, [[5]])
    with pytest.raises(ta.Error, match="layer 3 outside"):
        ta.head_influence(tiny, [[5, 6, 7]], layers=[3])
    with pytest.raises(ta.Error, match="scored span"):
        ta.head_influence(tiny, [[5, 6, 7]], scored=[(1, 9)])
    with pytest.raises(ta.Error, match="batch_lanes"):
        ta.head_influence(tiny, [[5, 6, 7]], batch_lanes=0)


@pytest.fixture(scope="module")
def embedded():
    model = ta.load_embedded_model()
    problem = ta.embedded_problem()
    # Eight sentences: the receiver heads' kurtosis needs at least proximity_ignore + 2 = 6.
    solution = ("Emma buys 4 dozen donuts. That is 4 times 12, which is 48 donuts. She uses 2 of them. "
                "So she has 48 - 2 = 46 donuts. Later she gets 11 more donuts. Now she has 46 + 11 = 57 donuts. "
                "Let me check: 48 - 2 + 11 = 57. Therefore, the answer is \\boxed{57}.")
    trace = ta.Trace.from_text(solution, metadata={"problem": problem["problem"], "gt_answer": problem["gt_answer"]})
    return model, trace


def test_head_influence_method_on_a_trace(embedded):
    model, trace = embedded
    result = ta.HeadInfluence(batch_lanes=8).run(model, trace)
    a = result.attribution("head_influence")
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    assert a.matrices["head_influence"].shape == (L, H)
    by_sentence = a.matrices["head_influence_by_sentence"]
    assert by_sentence.shape == (L * H, len(trace.sentences))
    assert len(a.scores["mean_head_influence"]) == len(trace.sentences)
    # The method is head_influence over the trace's tokens from its first sentence on.
    ids, spans = ta.tokenize_trace(model.tokenizer, trace)
    direct = ta.head_influence(model, [ids], scored=[(spans[0][0], spans[-1][1])])
    assert torch.allclose(torch.as_tensor(a.matrices["head_influence"]), direct.influence, atol=1e-9)
    assert "head_influence" in ta.render_report_html(result)  # the report takes the attribution as it is
    top = a.metadata["top_heads"].split(",")[0]
    layer, head = map(int, top.split(":"))
    assert direct.influence[layer, head] == direct.influence.max()


def test_receiver_head_ablation_on_the_embedded_model(embedded, tmp_path):
    model, trace = embedded
    method = ta.HeadAblation(model, num_rollouts=3, top_k=3, random_draws=2, max_tokens=220, temperature=0.0,
                             batch=3, out_dir=str(tmp_path))
    result = method.run(trace)
    a = result.attribution("head_ablation")
    assert a.metadata["conditions"] == "none,receiver,random_0,random_1"
    accuracy = a.matrices["ablation_accuracy"]
    assert accuracy.shape == (4, 6)
    assert (accuracy[:, 3] == 3).all()  # every condition made its rollouts
    assert accuracy[0, 2] == 3  # the unablated model states an answer in 220 tokens: the rates are defined
    assert a.metadata["drop_receiver"] == a.metadata["accuracy_none"] - a.metadata["accuracy_receiver"]
    receivers = [tuple(map(int, h.split(":"))) for h in a.metadata["receiver_heads"].split(",")]
    assert len(receivers) == 3
    for draw in ("random_heads_0", "random_heads_1"):
        drawn = [tuple(map(int, h.split(":"))) for h in a.metadata[draw].split(",")]
        assert sorted(layer for layer, _ in drawn) == sorted(layer for layer, _ in receivers)
        assert not set(drawn) & set(receivers)
    assert len(a.scores["receiver_score"]) == len(trace.sentences)

    # Greedy rollouts: each condition's equal the provider's greedy completion under the same control.
    provider = ta.LocalProvider(model)
    texts = {}
    for condition, heads in (("none", []), ("receiver", receivers)):
        records = json.loads((tmp_path / "head_ablation" / condition / "resample_0" / "chunk_0" /
                              "solutions.json").read_text(encoding="utf-8"))
        assert len(records) == 3
        prompt = records[0]["full_cot"][: len(records[0]["full_cot"]) - len(records[0]["rollout"])]
        ids = model.tokenizer.encode(prompt).ids
        expected = provider.complete(ids, 1, temperature=0, max_tokens=220,
                                     control=ta.AttentionControl.ablating(heads))[0].text
        assert [r["rollout"] for r in records] == [expected] * 3, condition
        texts[condition] = expected
    assert texts["none"] != texts["receiver"]  # the ablation changed the generation

    # A re-run resumes (nothing new) and gives the same attribution; other heads in the same folder are an error.
    again = method.run(trace).attribution("head_ablation")
    np.testing.assert_array_equal(again.matrices["ablation_accuracy"], accuracy)  # NaN equals NaN
    with pytest.raises(ta.Error, match="attention_control"):
        ta.HeadAblation(model, num_rollouts=3, heads=[(1, 0)], random_draws=0, max_tokens=220, temperature=0.0,
                        batch=3, out_dir=str(tmp_path)).run(trace)


def test_head_ablation_errors(embedded, tmp_path):
    model, trace = embedded
    with pytest.raises(ta.Error, match="HeadAblation needs model="):
        ta.HeadAblation("http://127.0.0.1:9")
    with pytest.raises(ta.Error, match="heads besides its 3 ablated receiver heads"):
        ta.HeadAblation(model, heads=[(1, 0), (1, 1), (1, 2)], random_draws=1, num_rollouts=1, max_tokens=4,
                        out_dir=str(tmp_path / "b")).run(trace)


def test_head_methods_from_the_cli(anchors_cli, embedded, tmp_path):
    model, trace = embedded
    path = tmp_path / "result.json"
    ta.AnalysisResult(trace, []).save(str(path))
    run = subprocess.run([anchors_cli, "run", "head_influence", "--model", model.path, "--result", str(path),
                          "--layers", "1,2", "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    a = ta.load_result(str(path)).attribution("head_influence")
    assert math.isnan(a.matrices["head_influence"][0][0]) and not math.isnan(a.matrices["head_influence"][1][0])
    run = subprocess.run([anchors_cli, "run", "head_ablation", "--model", model.path, "--result", str(path),
                          "--rollouts-dir", str(tmp_path / "rollouts"), "--device", "cpu", "--num_rollouts", "2",
                          "--top_k", "2", "--random_draws", "1", "--max_tokens", "16", "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    a = ta.load_result(str(path)).attribution("head_ablation")
    assert a.metadata["conditions"] == "none,receiver,random_0"
    assert (tmp_path / "rollouts" / "head_ablation" / "random_0" / "resample_0").is_dir()


def test_attention_steering_on_the_embedded_model(embedded, tmp_path):
    model, trace = embedded
    targets = [1, 2]
    method = ta.AttentionSteering(model, num_rollouts=2, sentences=targets, top_k=3, beta=6.0, max_tokens=200,
                                  temperature=0.0, batch=2, out_dir=str(tmp_path))
    a = method.run(trace).attribution("attention_steering")
    S = len(trace.sentences)
    shift = a.scores["steering_rate_shift"]
    assert len(shift) == S
    assert [math.isnan(x) for x in shift] == [i not in targets for i in range(S)]
    for i in targets:
        assert shift[i] == a.scores["steered_rate"][i] - a.scores["plain_rate"][i]
    heads = [tuple(map(int, h.split(":"))) for h in a.metadata["heads"].split(",")]
    assert len(heads) == 3

    # Greedy: the steered rollouts equal the provider's greedy completion with the same boost, written here:
    # sentence i's tokens by prefix tokenisation, +beta for the heads from the end of the sentence on.
    provider = ta.LocalProvider(model)
    root = tmp_path / "attention_steering"
    changed = 0
    for i in targets:
        steered = json.loads((root / f"steered_{i}" / f"resample_{i + 1}" / "chunk_0" / "solutions.json")
                             .read_text(encoding="utf-8"))
        plain = json.loads((root / "plain" / f"resample_{i + 1}" / "chunk_0" / "solutions.json")
                           .read_text(encoding="utf-8"))
        full = steered[0]["full_cot"]
        head = full[: len(full) - len(steered[0]["rollout"])]
        prompt = head[: len(head) - len(trace.text[: trace.sentences[i + 1].char_start])]
        sentence = trace.sentences[i]
        begin = len(model.tokenizer.encode(prompt + trace.text[: sentence.char_start]).ids)
        end = len(model.tokenizer.encode(prompt + trace.text[: sentence.char_end]).ids)
        control = ta.AttentionControl()
        for layer in sorted({layer for layer, _ in heads}):
            control.boost_keys((begin, end), 6.0, start=end, layers=[layer],
                               heads=[h for l, h in heads if l == layer])
        ids = model.tokenizer.encode(head).ids
        expected = provider.complete(ids, 1, temperature=0, max_tokens=200, control=control)[0].text
        assert [r["rollout"] for r in steered] == [expected] * 2
        unsteered = provider.complete(ids, 1, temperature=0, max_tokens=200)[0].text
        assert [r["rollout"] for r in plain] == [unsteered] * 2
        changed += expected != unsteered
    assert changed > 0  # a boost of 6 on three heads changes some continuation

    with pytest.raises(ta.Error, match="is the last"):
        ta.AttentionSteering(model, num_rollouts=1, sentences=[S - 1], max_tokens=4,
                             out_dir=str(tmp_path / "x")).run(trace)
