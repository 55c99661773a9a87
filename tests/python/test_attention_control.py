"""ta.AttentionControl while the model runs and generates, against transformers.

Head ablation is defined as zeroing the head's slice of o_proj's input (its
attention output) -- exactly what a forward pre-hook on transformers'
`self_attn.o_proj` does. On random tiny checkpoints of the three families
(Qwen2, Llama, Qwen3; GQA 1, 2 and 4):

- logits over 64 tokens with heads of several layers ablated from a position
  on: max abs difference < 1e-4 (float32);
- greedy sampling through the cached, batched sampler (Model.sample at
  temperature 0, and LocalProvider) with those heads ablated: the same 32
  tokens as transformers' argmax decoding with the hook;
- the control reaches every entry point (Model.logits, Model.sample,
  LocalProvider.complete / prompt_logprobs), round-trips through JSON and
  pickle, and bad controls are ta.Error.
"""

from __future__ import annotations

import pickle

import pytest
import torch

import transformers  # noqa: F401  (a missing reference is an error, never a skip)
import thought_anchors as ta

from make_lm_fixtures import random_tiny_model, tiny_config

TOKENS = 64
NEW_TOKENS = 32
SIZES = dict(hidden=64, layers=3, intermediate=128, vocab=300, max_positions=256)
CASES = {
    "qwen2-gqa1": ("qwen2", dict(heads=4, kv_heads=4, tie=True, rope_theta=1e6)),
    "llama-gqa4": ("llama", dict(heads=8, kv_heads=2, tie=False, rope_theta=5e5)),
    "qwen3-gqa2": ("qwen3", dict(heads=4, kv_heads=2, tie=True, rope_theta=1e6)),
}
# (layer, head) pairs ablated, and the position they are ablated from.
ABLATED = [(0, 1), (1, 0), (1, 3), (2, 2)]


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def tiny(request, tmp_path_factory):
    architecture, options = CASES[request.param]
    seed = list(CASES).index(request.param) + 300
    model = random_tiny_model(tiny_config(architecture, **SIZES, **options), seed)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    ids = torch.randint(0, SIZES["vocab"], (TOKENS,), generator=torch.Generator().manual_seed(seed))
    return model, folder, ids


class HeadsZeroed:
    """Forward pre-hooks on o_proj zeroing the listed heads' input slices at sequence positions >= start
    (no KV cache is used with it: position = index along the sequence)."""

    def __init__(self, model, heads, start):
        self.handles = []
        head_dim = model.config.hidden_size // model.config.num_attention_heads
        head_dim = getattr(model.config, "head_dim", None) or head_dim
        for layer, layer_module in enumerate(model.model.layers):
            zeroed = [h for (l, h) in heads if l == layer]
            if not zeroed:
                continue

            def hook(module, args, zeroed=zeroed):
                (x,) = args
                x = x.clone()
                for h in zeroed:
                    x[:, start:, h * head_dim:(h + 1) * head_dim] = 0
                return (x,)

            self.handles.append(layer_module.self_attn.o_proj.register_forward_pre_hook(hook))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def hf_logits(model, ids):
    with torch.no_grad():
        return model(ids[None], use_cache=False).logits[0].float()


def hf_greedy(model, prompt, new_tokens):
    ids = list(prompt)
    for _ in range(new_tokens):
        ids.append(int(hf_logits(model, torch.tensor(ids))[-1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("start", [0, 20])
def test_ablated_logits_match_transformers_with_o_proj_hooks(tiny, start):
    hf_model, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    control = ta.AttentionControl.ablating(ABLATED, start=start)
    with HeadsZeroed(hf_model, ABLATED, start):
        expected = hf_logits(hf_model, ids)
    got = ours.logits(ids, control=control)
    diff = (got - expected).abs().max().item()
    print(f"ablated fp32 max |ours - transformers| = {diff:.3g}")
    assert diff < 1e-4
    # The ablation changed the logits (from `start` on only), so the comparison means something.
    plain = ours.logits(ids)
    assert (got[start:] - plain[start:]).abs().max().item() > 1e-3
    if start:
        assert (got[:start] - plain[:start]).abs().max().item() < 1e-6


def test_ablated_greedy_sampling_matches_transformers(tiny):
    hf_model, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    prompt = ids[:24].tolist()
    # From inside the prompt (the sampler then recomputes the prompt from there
    # on) and from the first generated token.
    for start in (10, len(prompt)):
        control = ta.AttentionControl.ablating(ABLATED, start=start)
        with HeadsZeroed(hf_model, ABLATED, start):
            expected = hf_greedy(hf_model, prompt, NEW_TOKENS)
        samples = ours.sample(prompt, 2, temperature=0, max_new_tokens=NEW_TOKENS, control=control)
        assert [s.ids for s in samples] == [expected, expected]
        provider = ta.LocalProvider(ours)
        assert provider.complete(prompt, 1, temperature=0, max_tokens=NEW_TOKENS, control=control)[0].ids == expected
    plain = ours.sample(prompt, 1, temperature=0, max_new_tokens=NEW_TOKENS)[0].ids
    assert plain == hf_greedy(hf_model, prompt, NEW_TOKENS)
    assert plain != expected


def test_suppression_and_boost_change_generation_consistently(tiny):
    # The cached sampler with key suppression / boost from a position equals
    # full uncached forward passes with the same control (argmax each step).
    _, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    prompt = ids[:24].tolist()
    control = ta.AttentionControl().suppress_keys((2, 12), start=16).boost_keys((0, 3), 2.0, start=24, heads=[1])
    tokens = list(prompt)
    for _ in range(12):
        tokens.append(int(ours.logits(torch.tensor(tokens), control=control)[-1].argmax()))
    got = ours.sample(prompt, 1, temperature=0, max_new_tokens=12, control=control)[0].ids
    assert got == tokens[len(prompt):]


def test_prompt_logprobs_with_control(tiny):
    _, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    control = ta.AttentionControl().ablate_heads(1, None, start=5)
    provider = ta.LocalProvider(ours)
    scored = provider.prompt_logprobs(ids.tolist(), control=control)
    log_probs = torch.log_softmax(ours.logits(ids, control=control), -1)
    expected = log_probs[:-1].gather(1, ids[1:, None])[:, 0]
    assert torch.allclose(torch.tensor(scored[1:], dtype=torch.float64), expected.double(), atol=1e-5)
    assert scored[1:] != provider.prompt_logprobs(ids.tolist())[1:]


def test_control_api_round_trips():
    control = (
        ta.AttentionControl()
        .ablate_heads(3, [1, 5], start=12)
        .suppress_keys((40, None), start=60, layers=[0, 2])
        .boost_keys((4, 9), 2.25, heads=[7])
    )
    assert len(control) == 3
    assert control.regions[0] == dict(effect="ablate", lane=-1, queries=(12, None), heads=[1, 5], layers=[3])
    assert control.regions[1]["keys"] == (40, None)
    assert control.regions[2]["beta"] == 2.25
    assert ta.AttentionControl.from_json(control.to_json()) == control
    assert pickle.loads(pickle.dumps(control)) == control
    assert control != ta.AttentionControl()
    assert ta.AttentionControl.ablating([(2, 1), (0, 3), (2, 0)]).regions == [
        dict(effect="ablate", lane=-1, queries=(0, None), heads=[3], layers=[0]),
        dict(effect="ablate", lane=-1, queries=(0, None), heads=[1, 0], layers=[2]),
    ]
    with pytest.raises(ta.Error, match="regions\\[0\\].effect"):
        ta.AttentionControl.from_json('{"regions": [{"effect": "mute"}]}')


def test_bad_controls_are_errors(tmp_path):
    folder = tmp_path / "m"
    random_tiny_model(tiny_config("qwen2", **SIZES, heads=4, kv_heads=2, tie=True), 5).save_pretrained(folder)
    ours = ta.Model.load(str(folder))
    with pytest.raises(ta.Error, match="layer 3 outside \\[0, 3\\)"):
        ours.sample([1, 2, 3], 1, max_new_tokens=2, control=ta.AttentionControl().ablate_heads(3, [0]))
    with pytest.raises(ta.Error, match="head 4 outside \\[0, 4\\)"):
        ours.logits(torch.tensor([1, 2, 3]), control=ta.AttentionControl().ablate_heads(0, [4]))
    with pytest.raises(ta.Error, match="bad key span"):
        ours.sample([1, 2, 3], 1, max_new_tokens=2, control=ta.AttentionControl().suppress_keys((5, 2)))

    class Echo(ta.RolloutProvider):
        def __init__(self):
            super().__init__()

        def complete(self, prompt_ids, n, **kwargs):
            return [ta.Completion(ids=[1], text="x", finish_reason="length")] * n

    # A Python complete() takes no control: reached from C++ (here through a pool), a request with one is
    # refused rather than answered from the unchanged model.
    pool = ta.ProviderPool([Echo()])
    with pytest.raises(ta.Error, match="cannot apply an attention control"):
        pool.complete([1, 2], 1, control=ta.AttentionControl().ablate_heads(0, [0]))
    assert len(ta.ProviderPool([Echo()]).complete([1, 2], 1)) == 1
