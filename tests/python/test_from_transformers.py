"""ta.Model.from_transformers: a transformers model wrapped without a copy (its parameter storage shared) computes
what Model.load computes from the same model saved to a folder."""

from __future__ import annotations

import pytest
import torch

import thought_anchors as ta

from make_lm_fixtures import random_tiny_model, tiny_config  # noqa: E402

SIZES = dict(hidden=64, layers=3, intermediate=96, vocab=300, max_positions=256)

CASES = {
    # q/k/v and gate/up kept apart (one GEMM each) where Model.load stacks them; biases; a tied head.
    "qwen2-tied": ("qwen2", dict(heads=4, kv_heads=2, tie=True)),
    "llama-bias-untied": ("llama", dict(heads=4, kv_heads=4, tie=False, attention_bias=True, mlp_bias=True)),
    # Projections the checkpoint already stacks, routed experts as transformers stacks them in memory.
    "phi3-fused": ("phi3", dict(heads=4, kv_heads=2, tie=False)),
    "qwen3moe": ("qwen3_moe", dict(heads=4, kv_heads=2, tie=False, num_experts=4, num_experts_per_tok=2,
                                   moe_intermediate_size=32, mlp_only_layers=[1])),
    # Post-sublayer norms and a sliding window.
    "olmo3-window": ("olmo3", dict(heads=4, kv_heads=2, tie=False, sliding_window=8)),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def pair(request, tmp_path_factory):
    architecture, options = CASES[request.param]
    hf = random_tiny_model(tiny_config(architecture, **SIZES, **options), list(CASES).index(request.param) + 40)
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, folder


def test_shares_storage_and_matches_load(pair):
    hf, folder = pair
    ours = ta.Model.from_transformers(hf)
    loaded = ta.Model.load(str(folder))
    ids = torch.randint(0, SIZES["vocab"], (40,), generator=torch.Generator().manual_seed(3))
    # Separate GEMMs instead of stacked ones: the same sums in another blocking, float32 rounding apart.
    assert (ours.logits(ids) - loaded.logits(ids)).abs().max().item() < 1e-5
    with torch.no_grad():
        expected = hf(ids[None]).logits[0]
    assert (ours.logits(ids) - expected).abs().max().item() < 1e-4
    assert ours.num_parameters == loaded.num_parameters == sum(p.numel() for p in hf.parameters())
    # Every weight the wrapped model holds is a transformers parameter's own storage.
    parameters = {name: tensor.data_ptr() for name, tensor in hf.state_dict().items()}
    held = ours.named_weights()
    assert len(held) == len({name for name, _ in held})
    for name, tensor in held:
        assert name in parameters, name
        assert tensor.data_ptr() == parameters[name], name
    assert ours.dtype == torch.float32 and ours.device == "cpu" and ours.path == ""
    assert ours.config.architecture_name == type(hf).__name__


def test_bfloat16_model_runs_in_bfloat16_shared(pair):
    hf, folder = pair
    half = random_tiny_model(hf.config, 1).to(torch.bfloat16)
    ours = ta.Model.from_transformers(half)
    assert ours.dtype == torch.bfloat16
    embed = dict(ours.named_weights())["model.embed_tokens.weight"]
    assert embed.data_ptr() == half.state_dict()["model.embed_tokens.weight"].data_ptr()
    ids = torch.randint(0, SIZES["vocab"], (24,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = half.float()(ids[None]).logits[0]
    assert (ours.logits(ids) - reference).abs().max().item() < 0.5  # bf16 rounding, not a different model


def test_tokenizer_and_errors(tmp_path):
    from tokenizers import Tokenizer

    from conftest import REPO

    hf = random_tiny_model(tiny_config("qwen2", **SIZES, heads=4, kv_heads=2), 5)
    tokenizer = Tokenizer.from_file(str(REPO / "tests" / "data" / "tokenizers" / "qwen2" / "tokenizer.json"))
    ours = ta.Model.from_transformers(hf, tokenizer=tokenizer)
    text = "Hello world, 12 + 30 = 42."
    assert ours.tokenizer.encode(text).ids == tokenizer.encode(text, add_special_tokens=False).ids
    assert ta.Model.from_transformers(hf).tokenizer is None
    with pytest.raises(ta.Error, match="expected a transformers model"):
        ta.Model.from_transformers(object())
    with pytest.raises(ta.Error, match="fast"):
        ta.Model.from_transformers(hf, tokenizer=object())

    from transformers import Olmo2Config, Olmo2ForCausalLM

    olmo2 = Olmo2ForCausalLM(Olmo2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                         vocab_size=64, intermediate_size=48))
    with pytest.raises(ta.Error, match="Olmo2ForCausalLM.*nearest: Olmo3ForCausalLM"):
        ta.Model.from_transformers(olmo2)
    # A tensor of the wrong shape is named.
    broken = dict(hf.state_dict())
    broken["model.layers.1.mlp.down_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ta.Error, match=r"down_proj.weight.*\[3, 3\]"):
        ta.Model.from_tensors(hf.config.to_json_string(use_diff=False).replace('"architectures": null',
                                                                               '"architectures": ["Qwen2ForCausalLM"]'),
                              broken)
