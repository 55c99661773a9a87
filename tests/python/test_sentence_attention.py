"""sentence_attention vs transformers' own eager attention weights (output_attentions=True)."""

import pytest
import torch

import thought_anchors as ta


@pytest.fixture(scope="module", params=["llama", "mistral", "smollm3", "mistral_window", "olmo3"])
def tiny_llama(request, tmp_path_factory):
    """A random Llama, a Mistral with Magistral's head_dim set apart from hidden_size / heads, a SmolLM3 whose
    middle layer has no RoPE, a Mistral attending within 12 slots and an OLMo-3 whose first and last layers slide
    within 20 (the weights such a layer computes: 0 outside its window)."""
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Olmo3Config,
                              Olmo3ForCausalLM, SmolLM3Config, SmolLM3ForCausalLM)

    torch.manual_seed(1)
    common = dict(vocab_size=200, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512)
    if request.param == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    elif request.param == "mistral":
        config, cls = MistralConfig(head_dim=32, sliding_window=None, **common), MistralForCausalLM
    elif request.param == "mistral_window":
        config, cls = MistralConfig(sliding_window=12, **common), MistralForCausalLM
    elif request.param == "olmo3":
        config = Olmo3Config(sliding_window=20, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                             pad_token_id=None, eos_token_id=None, **common)
        cls = Olmo3ForCausalLM
    else:
        config, cls = SmolLM3Config(no_rope_layers=[1, 0, 1], pad_token_id=None, bos_token_id=None,
                                    eos_token_id=None, **common), SmolLM3ForCausalLM
    path = tmp_path_factory.mktemp(request.param)
    cls(config).save_pretrained(path, safe_serialization=True)
    reference = cls.from_pretrained(path, attn_implementation="eager").eval()
    return path, reference


def reference_block_means(attentions, spans):
    """[L, H, S, S]: mean of attention from tokens of sentence i to tokens of sentence j."""
    layers = []
    for a in attentions:  # [1, H, T, T]
        a = a[0].double()
        out = torch.zeros(a.shape[0], len(spans), len(spans), dtype=torch.float64)
        for i, (qb, qe) in enumerate(spans):
            for j, (kb, ke) in enumerate(spans):
                out[:, i, j] = a[:, qb:qe, kb:ke].sum(dim=(1, 2)) / ((qe - qb) * (ke - kb))
        layers.append(out)
    return torch.stack(layers)


def test_matches_transformers_eager_attention(tiny_llama):
    path, reference = tiny_llama
    torch.manual_seed(2)
    ids = torch.randint(0, 200, (97,))
    spans = [(0, 11), (11, 30), (30, 31), (35, 60), (60, 97)]  # uneven, with a gap
    with torch.no_grad():
        attentions = reference(ids[None], output_attentions=True).attentions
    expected = reference_block_means(attentions, spans)
    model = ta.Model.load(str(path))
    got = ta.sentence_attention(model, ids.tolist(), spans)
    assert got.shape == (3, 4, 5, 5)
    assert (got.double() - expected).abs().max().item() < 1e-5
    subset = ta.sentence_attention(model, ids.tolist(), spans, layers=[2, 0])
    assert torch.equal(subset, got[[2, 0]])


def test_bad_spans_are_errors(tiny_llama):
    path, _ = tiny_llama
    model = ta.Model.load(str(path))
    ids = list(range(20))
    for spans in ([], [(5, 3)], [(0, 10), (5, 15)], [(10, 15), (0, 5)], [(0, 25)]):
        with pytest.raises(ta.Error):
            ta.sentence_attention(model, ids, spans)
    with pytest.raises(ta.Error):
        ta.sentence_attention(model, ids, [(0, 5)], layers=[7])
