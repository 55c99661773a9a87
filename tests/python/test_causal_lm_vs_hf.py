"""thought_anchors.Model against transformers on random tiny checkpoints made
at test time with `save_pretrained`: Qwen2 (q/k/v biases), Llama (llama3 and
linear rope scaling, attention/MLP biases), Qwen3 (q/k norms), Mistral
(Magistral's head_dim and rope_theta), Qwen3-MoE (routed experts, dense layers
between them), SmolLM3 (layers without RoPE), Phi-3 (fused qkv and gate-up
weights; Phi-4-mini's LongRoPE and partial rotary) and OLMo-3 (norms after each sublayer, q/k norms over all heads),
sliding windows narrower than the sequence (Mistral, Qwen2 from a layer on,
OLMo-3's sliding and full layers), YaRN rope (Qwen3, OLMo-3's full layers),
tied and untied embeddings,
GQA ratios 1, 2 and 4.

- float32 logits over 64 tokens: max abs difference < 1e-4;
- bfloat16: our error against our float32 no worse than twice transformers'
  bfloat16 error against its float32;
- greedy decoding with the KV cache: the same 32 tokens as transformers'
  generate(do_sample=False, max_new_tokens=32).
"""

from __future__ import annotations

import pytest
import torch

import transformers  # noqa: E402  (a missing reference is an error, never a skip)
import thought_anchors as ta  # noqa: E402

from make_lm_fixtures import greedy_continuation, random_tiny_model, tiny_config  # noqa: E402


TOKENS = 64
NEW_TOKENS = 32
SIZES = dict(hidden=64, layers=3, intermediate=128, vocab=300, max_positions=256)
LLAMA3_ROPE = dict(
    rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64
)

# id -> (architecture, options). Every architecture tied and untied; GQA ratios
# (heads / kv_heads) 1, 2 and 4 spread over them.
CASES = {
    "qwen2-tied-gqa1": ("qwen2", dict(heads=4, kv_heads=4, tie=True, rope_theta=1e6)),
    "qwen2-untied-gqa2": ("qwen2", dict(heads=4, kv_heads=2, tie=False, rope_theta=1e6)),
    "llama3rope-tied-gqa4": ("llama", dict(heads=8, kv_heads=2, tie=True, rope_theta=5e5, rope_scaling=LLAMA3_ROPE)),
    "llama3rope-untied-gqa2": (
        "llama", dict(heads=4, kv_heads=2, tie=False, rope_theta=5e5, rope_scaling=LLAMA3_ROPE)),
    "llama-linear-bias-untied-gqa1": (
        "llama",
        dict(heads=4, kv_heads=4, tie=False, attention_bias=True, mlp_bias=True,
             rope_scaling=dict(rope_type="linear", factor=2.0)),
    ),
    "qwen3-tied-gqa2": ("qwen3", dict(heads=4, kv_heads=2, tie=True, rope_theta=1e6)),
    "qwen3-untied-gqa4-head32": ("qwen3", dict(heads=4, kv_heads=1, head_dim=32, tie=False, rope_theta=1e6)),
    # Magistral's layout: head_dim set apart from hidden_size / heads, a large rope_theta, no window.
    "mistral-untied-gqa4-head32": ("mistral", dict(heads=4, kv_heads=1, head_dim=32, tie=False, rope_theta=1e9)),
    "mistral-tied-gqa2": ("mistral", dict(heads=4, kv_heads=2, tie=True)),
    # Qwen3-MoE: top-2 of 8 experts renormalised, layer 1 dense (mlp_only_layers); and top-3 of 6 unnormalised on
    # every layer with attention biases.
    "qwen3moe-untied-gqa2-top2of8": (
        "qwen3_moe",
        dict(heads=4, kv_heads=2, tie=False, rope_theta=1e6, num_experts=8, num_experts_per_tok=2,
             moe_intermediate_size=32, norm_topk_prob=True, mlp_only_layers=[1]),
    ),
    "qwen3moe-tied-gqa4-top3of6-bias": (
        "qwen3_moe",
        dict(heads=8, kv_heads=2, tie=True, attention_bias=True, num_experts=6, num_experts_per_tok=3,
             moe_intermediate_size=48, norm_topk_prob=False),
    ),
    # SmolLM3: the middle layer without RoPE; then the first, with attention and MLP biases.
    "smollm3-tied-gqa2-nope1": ("smollm3", dict(heads=4, kv_heads=2, tie=True, no_rope_layers=[1, 0, 1])),
    "smollm3-untied-gqa1-nope0-bias": (
        "smollm3",
        dict(heads=4, kv_heads=4, tie=False, attention_bias=True, mlp_bias=True, rope_theta=5e6,
             no_rope_layers=[0, 1, 1]),
    ),
    # Phi-3 / Phi-4: fused qkv_proj and gate_up_proj in the checkpoint; Phi-4-reasoning's rope_theta.
    "phi3-untied-gqa2": ("phi3", dict(heads=4, kv_heads=2, tie=False, rope_theta=5e5)),
    "phi3-tied-mha": ("phi3", dict(heads=4, kv_heads=4, tie=True)),
    # Phi-4-mini's rope: 3/4 of each head rotates, LongRoPE over a 32-token pretraining context, so the 64-token
    # pass and the decoding steps past 32 use the long factors, the 32-token prompt the short ones.
    "phi3-longrope-partial-untied": (
        "phi3",
        dict(heads=4, kv_heads=2, tie=False, partial_rotary_factor=0.75, original_max_position_embeddings=32,
             rope_scaling=dict(rope_type="longrope", short_factor=[1.0, 1.1, 1.3, 1.6, 2.0, 2.5],
                               long_factor=[1.0, 1.5, 3.0, 6.0, 12.0, 24.0])),
    ),
    # Qwen3's long-context YaRN (factor 4 over a 64-token pretraining context).
    "qwen3-yarn-untied-gqa2": (
        "qwen3",
        dict(heads=4, kv_heads=2, tie=False, rope_theta=1e6,
             rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=64)),
    ),
    # Sliding windows of 8 and 16 slots, far narrower than the 64 tokens (and the 32-token greedy prompt).
    "mistral-window8-gqa2": ("mistral", dict(heads=4, kv_heads=2, tie=False, sliding_window=8)),
    "qwen2-window16-from-layer1": (
        "qwen2", dict(heads=4, kv_heads=2, tie=True, use_sliding_window=True, sliding_window=16, max_window_layers=1)),
    # OLMo-3: sliding, full, sliding (its 3-of-4 pattern cut to 3 layers); then every layer sliding with biases.
    # (its full layer scaled by YaRN, as OLMo-3-Think's are, the sliding ones not)
    "olmo3-untied-gqa2-window8-yarn": (
        "olmo3",
        dict(heads=4, kv_heads=2, tie=False, rope_theta=5e5, sliding_window=8,
             layer_types=["sliding_attention", "full_attention", "sliding_attention"],
             rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=64)),
    ),
    "olmo3-tied-mha-bias-window16": (
        "olmo3", dict(heads=4, kv_heads=4, tie=True, attention_bias=True, sliding_window=16)),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def tiny(request, tmp_path_factory):
    """(transformers model in float32, checkpoint folder, input ids [TOKENS])."""
    architecture, options = CASES[request.param]
    seed = list(CASES).index(request.param) + 100
    model = random_tiny_model(tiny_config(architecture, **SIZES, **options), seed)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SIZES["vocab"], (TOKENS,), generator=generator)
    return model, folder, ids


def transformers_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids[None]).logits[0].float()


def test_float32_logits_match(tiny):
    hf_model, folder, ids = tiny
    ours = ta.Model.load(str(folder), dtype=torch.float32, device="cpu")
    expected = transformers_logits(hf_model, ids)
    got = ours.logits(ids)
    assert got.shape == (TOKENS, SIZES["vocab"]) and got.dtype == torch.float32
    diff = (got - expected).abs().max().item()
    print(f"fp32 max |ours - transformers| = {diff:.3g}")
    assert diff < 1e-4
    # [B, T] input: two lanes, each equal to its own single-lane run.
    batch = torch.stack([ids, ids.flip(0)])
    both = ours.logits(batch)
    assert both.shape == (2, TOKENS, SIZES["vocab"])
    assert (both[0] - expected).abs().max().item() < 1e-4
    assert (both[1] - transformers_logits(hf_model, ids.flip(0))).abs().max().item() < 1e-4


def test_padded_batches_equal_their_rows(tiny):
    """logits(ids [B, T], mask=) of a left- and right-padded batch: each row's real tokens get what the row alone
    gets (and transformers with the same attention mask and position ids), zeros at padding."""
    hf_model, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    rows = [ids[:20], ids[5:12], ids[30:46]]
    batch = torch.zeros((3, 24), dtype=torch.int64)
    mask = torch.zeros((3, 24), dtype=torch.bool)
    starts = [0, 17, 8]  # right-padded, left-padded, both
    for b, (row, start) in enumerate(zip(rows, starts)):
        batch[b, start:start + len(row)] = row
        mask[b, start:start + len(row)] = True
    got = ours.logits(batch, mask=mask)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hf = hf_model(batch, attention_mask=mask.long(), position_ids=positions).logits.float()
    for b, (row, start) in enumerate(zip(rows, starts)):
        real = slice(start, start + len(row))
        assert (got[b, real] - ours.logits(row)).abs().max().item() < 1e-5
        assert (got[b, real] - hf[b, real]).abs().max().item() < 1e-4
        assert (got[b][~mask[b]] == 0).all()
    assert torch.equal(ours.logits(batch.numpy(), mask=mask.numpy().astype("int64")), got)
    with pytest.raises(ta.Error, match="gap at token"):
        ours.logits(batch, mask=torch.tensor([[1] * 5 + [0] + [1] * 18] * 3))


def test_bfloat16_error_within_twice_transformers(tiny):
    hf_model, folder, ids = tiny
    hf_float32 = transformers_logits(hf_model, ids)
    hf_bf16_model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    hf_error = (transformers_logits(hf_bf16_model, ids) - hf_float32).abs().max().item()

    ours_float32 = ta.Model.load(str(folder), dtype=torch.float32).logits(ids)
    ours_bf16 = ta.Model.load(str(folder), dtype=torch.bfloat16)
    assert ours_bf16.dtype == torch.bfloat16
    our_error = (ours_bf16.logits(ids) - ours_float32).abs().max().item()
    print(f"bf16 max error: ours {our_error:.3g}, transformers {hf_error:.3g}")
    assert our_error <= 2 * hf_error


def cached_greedy(model, prompt: list[int], new_tokens: int) -> list[int]:
    """transformers' forward with a KV cache, one token at a time (what generate() does, minus its model-specific
    input preparation)."""
    from transformers import DynamicCache

    cache, out = DynamicCache(config=model.config), []
    with torch.no_grad():
        result = model(torch.tensor([prompt]), past_key_values=cache, use_cache=True)
        for step in range(new_tokens):
            out.append(result.logits[0, -1].argmax().item())
            position = torch.tensor([[len(prompt) + step]])
            result = model(torch.tensor([[out[-1]]]), past_key_values=cache, use_cache=True, position_ids=position)
    return out


def test_greedy_decoding_matches_generate(tiny):
    hf_model, folder, ids = tiny
    prompt = ids[: TOKENS // 2].tolist()
    expected = greedy_continuation(hf_model, prompt, NEW_TOKENS)
    if hf_model.config.rope_parameters.get("rope_type") == "longrope":
        # LongRoPE picks its factors per forward call (short while the call's positions stay within the
        # pretraining context): so do we, and so does transformers' forward with a cache. Phi-3's generate()
        # also recomputes the whole sequence with the long factors when it first passes that context; our
        # decoding keeps the keys it has (docs/causal-lm.md), so the reference is the cached forward.
        assert expected != cached_greedy(hf_model, prompt, NEW_TOKENS)  # the crossing happens in this test
        expected = cached_greedy(hf_model, prompt, NEW_TOKENS)
    ours = ta.Model.load(str(folder))
    assert ours.generate_greedy(prompt, NEW_TOKENS) == expected
    # An eos id stops decoding after the first time it is produced (and keeps it).
    eos = expected[5]
    stopped = ours.generate_greedy(prompt, NEW_TOKENS, eos_id=eos)
    assert stopped == expected[: expected.index(eos) + 1]


def test_config_attributes(tiny):
    hf_model, folder, _ = tiny
    config = ta.Model.load(str(folder)).config
    hf = hf_model.config
    assert config.vocab_size == hf.vocab_size
    assert config.hidden_size == hf.hidden_size
    assert config.num_hidden_layers == hf.num_hidden_layers
    assert config.num_attention_heads == hf.num_attention_heads
    assert config.num_key_value_heads == hf.num_key_value_heads
    assert config.head_dim == (getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads)
    assert config.rotary_dim == int(config.head_dim * hf.rope_parameters.get("partial_rotary_factor", 1.0)
                                    if "rope_type" in hf.rope_parameters else config.head_dim)
    assert config.tie_word_embeddings == hf.tie_word_embeddings
    if hf.model_type == "qwen3_moe":
        routed = [i for i, layer in enumerate(hf_model.model.layers)
                  if type(layer.mlp).__name__ == "Qwen3MoeSparseMoeBlock"]
        assert routed and config.moe_layers == routed
        assert (config.num_experts, config.num_experts_per_tok) == (hf.num_experts, hf.num_experts_per_tok)
        # parameters() lists a tied embedding once, as num_parameters counts it.
        assert ta.Model.load(str(folder)).num_parameters == sum(p.numel() for p in hf_model.parameters())
    else:
        assert config.moe_layers == []
    nope = [i for i, layer in enumerate(hf_model.model.layers) if not getattr(layer.self_attn, "use_rope", True)]
    assert config.nope_layers == nope
    # The window each layer's attention gets from transformers: the module's own, else the config's (Mistral).
    windows = {}
    for i, layer in enumerate(hf_model.model.layers):
        window = getattr(layer.self_attn, "sliding_window", getattr(hf, "sliding_window", None))
        if window is not None and getattr(hf, "layer_types", None) is not None and hf.layer_types[i] != "sliding_attention":
            window = None
        if window is not None:
            windows[i] = window
    assert config.sliding_windows == windows


def test_bad_inputs_raise(tiny):
    _, folder, ids = tiny
    ours = ta.Model.load(str(folder))
    with pytest.raises(ta.Error):
        ours.logits(torch.tensor([0, SIZES["vocab"]]))  # id outside the vocabulary
    with pytest.raises(ta.Error):
        ours.logits(ids.float())  # not integer ids
    with pytest.raises(ta.Error):
        ours.logits(torch.zeros(SIZES["max_positions"] + 1, dtype=torch.long))  # past max positions


def test_sampling_through_python():
    """Temperature 0 is greedy; a seed makes sampling reproducible; stop ids end a sample."""
    from pathlib import Path

    model_dir = Path(__file__).resolve().parents[1] / "data" / "tiny_models" / "qwen2_bias_tied"
    model = ta.Model.load(str(model_dir))
    prompt = [5, 17, 42, 7, 99]
    greedy = model.generate_greedy(prompt, 12)
    samples = model.sample(prompt, 3, temperature=0.0, max_new_tokens=12)
    assert [s.ids for s in samples] == [greedy] * 3
    a = model.sample(prompt, 4, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=7)
    b = model.sample(prompt, 2, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=7)
    assert [s.ids for s in a[:2]] == [s.ids for s in b]  # lane results do not depend on n
    assert all(s.finish_reason == "length" and len(s.ids) == 10 for s in a)
    stop = a[0].ids[3]
    stopped = model.sample(prompt, 1, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=7, stop_ids=[stop])[0]
    assert stopped.finish_reason == "stop" and stopped.ids[-1] == stop and stop not in stopped.ids[:-1]
    with pytest.raises(ta.Error):
        model.sample(prompt, 0)
    if not torch.cuda.is_available():  # was a RuntimeError from inside torch
        with pytest.raises(ta.Error, match="no usable CUDA device"):
            ta.Model.load(str(model_dir), device="cuda")


def test_sampling_is_bounded_by_memory():
    """Issue: model.sample(ids, 10**6, max_new_tokens=1) allocated 24.6 GB at once and was OOM-killed. The lanes
    now run in batches that fit a memory budget (same samples), requests that cannot fit are a ta.Error before
    anything is allocated, and an allocation that fails anyway is a ta.Error, not MemoryError/RuntimeError."""
    import subprocess
    import sys
    from pathlib import Path

    model_dir = Path(__file__).resolve().parents[1] / "data" / "tiny_models" / "qwen2_bias_tied"
    model = ta.Model.load(str(model_dir))
    prompt = [5, 17, 42, 7, 99]
    whole = model.sample(prompt, 6, temperature=1.0, max_new_tokens=8, seed=3)
    with pytest.raises(ta.Error, match=r"one lane needs .*\(max_batch_bytes = 10000 bytes\)"):
        model.sample(prompt, 6, temperature=1.0, max_new_tokens=8, seed=3, max_batch_bytes=10000)
    with pytest.raises(ta.Error, match=r"6 samples of up to 8 tokens need about .*\(max_batch_bytes = 1000 bytes\)"):
        model.sample(prompt, 6, temperature=1.0, max_new_tokens=8, seed=3, max_batch_bytes=1000)
    # Find a budget of two lanes: the error above names what one lane needs.
    for budget in range(10000, 10**8, 10000):
        try:
            model.sample(prompt, 1, max_new_tokens=8, max_batch_bytes=budget)
            break
        except ta.Error:
            continue
    batched = model.sample(prompt, 6, temperature=1.0, max_new_tokens=8, seed=3, max_batch_bytes=2 * budget)
    assert [s.ids for s in batched] == [s.ids for s in whole]
    with pytest.raises(ta.Error, match="samples of up to 1 tokens need .* half the memory available now"):
        model.sample(prompt, 10**12, max_new_tokens=1)
    # A budget larger than the memory there is: the allocation fails, and says so as a ta.Error.
    script = f"""
import resource, thought_anchors as ta
model = ta.Model.load({str(model_dir)!r})
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
try:
    model.sample([5, 17, 42], 200000, max_new_tokens=64, max_batch_bytes=1 << 40)
except ta.Error as e:
    print("ta.Error:", e)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ta.Error: out of memory"), run.stdout


@pytest.mark.parametrize("architecture", ["qwen2", "qwen3_moe", "olmo3"])
def test_long_pass_in_mlp_row_blocks_matches(architecture, tmp_path):
    """Past 1024 token rows the decoder runs its MLP in row blocks (batch 2 x 700 = 1400 rows); a routed MLP past
    16384 (token, expert) pairs (top-12: 1365 rows); OLMo-3's post-norms in blocks, with a 100-slot window."""
    sizes = dict(SIZES, max_positions=1024)
    extra = {"qwen3_moe": dict(num_experts=16, num_experts_per_tok=12, moe_intermediate_size=16),
             "olmo3": dict(sliding_window=100)}.get(architecture, {})
    model = random_tiny_model(
        tiny_config(architecture, **sizes, heads=4, kv_heads=2, tie=False, rope_theta=1e6, **extra), 7)
    model.save_pretrained(tmp_path)
    ids = torch.randint(0, SIZES["vocab"], (2, 700), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(ids).logits
    got = ta.Model.load(str(tmp_path)).logits(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("architecture, options", [
    ("phi3", dict(sliding_window=8)),
    ("qwen3", dict(use_sliding_window=True, sliding_window=8, max_window_layers=1)),
    ("qwen3_moe", dict(use_sliding_window=True, sliding_window=8, num_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=32)),
    ("smollm3", dict(use_sliding_window=True, sliding_window=8, no_rope_layers=[1, 0, 1])),
], ids=["phi3", "qwen3", "qwen3_moe", "smollm3"])
def test_sliding_windows_of_the_other_families_match(architecture, options, tmp_path):
    """The windows each family's config gives its layers (every layer, from max_window_layers on, the NoPE
    layers), 8 slots over 64 tokens: float32 logits as transformers'."""
    model = random_tiny_model(tiny_config(architecture, **SIZES, heads=4, kv_heads=2, **options), 3)
    model.save_pretrained(tmp_path)
    ids = torch.randint(0, SIZES["vocab"], (TOKENS,), generator=torch.Generator().manual_seed(1))
    ours = ta.Model.load(str(tmp_path))
    assert ours.config.sliding_windows and set(ours.config.sliding_windows.values()) == {8}
    assert (ours.logits(ids) - transformers_logits(model, ids)).abs().max().item() < 1e-4
