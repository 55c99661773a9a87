"""Tiny random decoder checkpoints and transformers' outputs on them.

Run from the repository root to (re)write the fixtures the C++ tests read:

    .venv/bin/python tests/python/make_lm_fixtures.py

Each tests/data/tiny_models/<name>/ holds config.json + model.safetensors (as
`save_pretrained` writes them) and expected.json: a fixed 24-token input,
transformers' float32 logits for it (eager attention), and its 16-token greedy
continuation of that input. The helpers here (`tiny_config`, `random_tiny_model`)
are also what tests/python/test_causal_lm_vs_hf.py builds its models with.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURE_ROOT = REPO / "tests" / "data" / "tiny_models"
FIXTURE_TOKENS = 24
FIXTURE_NEW_TOKENS = 16


def tiny_config(
    architecture: str,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int | None = None,
    intermediate: int = 48,
    vocab: int = 256,
    tie: bool = False,
    rope_theta: float = 10000.0,
    rope_scaling: dict | None = None,
    max_positions: int = 256,
    attention_bias: bool = False,
    mlp_bias: bool = False,
    **extra,
):
    """A transformers config of `architecture` ("qwen2", "llama", "qwen3", "mistral", "qwen3_moe", "smollm3",
    "phi3" or "olmo3");
    `extra` goes to the config class as it is (experts, NoPE layers, windows, ...)."""
    from transformers import (LlamaConfig, MistralConfig, Olmo3Config, Phi3Config, Qwen2Config, Qwen3Config,
                              Qwen3MoeConfig, SmolLM3Config)

    common = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        rope_theta=rope_theta,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    if rope_scaling is not None:
        common["rope_scaling"] = dict(rope_scaling)
    common.update(extra)
    if architecture == "qwen2":
        return Qwen2Config(**common)
    if architecture == "llama":
        return LlamaConfig(**common, attention_bias=attention_bias, mlp_bias=mlp_bias, head_dim=head_dim)
    if architecture == "qwen3":
        return Qwen3Config(**common, attention_bias=attention_bias, head_dim=head_dim or hidden // heads)
    if architecture == "mistral":
        return MistralConfig(**{"head_dim": head_dim, "sliding_window": None, **common})
    if architecture == "qwen3_moe":
        return Qwen3MoeConfig(**common, attention_bias=attention_bias, head_dim=head_dim or hidden // heads)
    if architecture == "smollm3":
        return SmolLM3Config(**common, attention_bias=attention_bias, mlp_bias=mlp_bias)
    if architecture == "phi3":
        return Phi3Config(**common)
    if architecture == "olmo3":
        return Olmo3Config(**{"sliding_window": None, **common}, attention_bias=attention_bias)
    raise ValueError(f"unknown architecture {architecture!r}")


def random_tiny_model(config, seed: int):
    """A float32 *ForCausalLM in eval mode with weights scaled like a trained
    model's (unit-variance activations, logits of a few units), so that numerical
    differences show up instead of hiding under transformers' 0.02-std init."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1.0 + 0.2 * torch.randn(parameter.shape, generator=generator))
            elif name.endswith("bias"):
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
            elif "embed_tokens" in name:
                # std 2/sqrt(hidden): a tied head then gives logits of std ~2 too.
                scale = 2.0 / math.sqrt(parameter.shape[-1])
                parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
            else:  # projections [out, in]
                fan_in = parameter.shape[-1]
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(fan_in))
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.eval()


def greedy_continuation(model, prompt: list[int], new_tokens: int) -> list[int]:
    """transformers' greedy generate (KV cache on), new tokens only."""
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
            eos_token_id=None,
        )
    return out[0, len(prompt) :].tolist()


# name -> (architecture, config options, seed). hidden 32, 2 layers, vocab 256:
# each folder stays well under 200 KB.
FIXTURES = {
    # Qwen2: q/k/v biases, tied embeddings, GQA 2, Qwen's rope_theta.
    "qwen2_bias_tied": ("qwen2", dict(heads=4, kv_heads=2, tie=True, rope_theta=1e6), 11),
    # Llama 3.1-style rope scaling with a short original context so all three
    # frequency bands (kept, smoothed, divided) occur; GQA 2; untied head.
    "llama_rope_llama3_gqa2": (
        "llama",
        dict(
            heads=4,
            kv_heads=2,
            rope_theta=500000.0,
            rope_scaling=dict(
                rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=64,
            ),
        ),
        12,
    ),
    # Qwen3: q_norm/k_norm, GQA 4, head_dim (16) != hidden / heads (8), tied.
    "qwen3_gqa4_head16_tied": ("qwen3", dict(heads=4, kv_heads=1, head_dim=16, tie=True), 13),
    # Llama with linear rope scaling, attention and MLP biases, MHA, tied.
    "llama_linear_bias_mha_tied": (
        "llama",
        dict(heads=4, kv_heads=4, tie=True, attention_bias=True, mlp_bias=True,
             rope_scaling=dict(rope_type="linear", factor=2.0)),
        14,
    ),
    # Qwen3-MoE: layer 0 routed (top-2 of 4 experts, renormalised), layer 1 dense; tied.
    "qwen3moe_top2of4_dense1": (
        "qwen3_moe",
        dict(heads=4, kv_heads=2, tie=True, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
             norm_topk_prob=True, mlp_only_layers=[1]),
        15,
    ),
    # SmolLM3: layer 1 without RoPE, tied.
    "smollm3_nope1_tied": ("smollm3", dict(heads=4, kv_heads=2, tie=True, no_rope_layers=[1, 0]), 16),
    # Phi-3: qkv_proj and gate_up_proj stacked in the checkpoint, tied.
    "phi3_fused_gqa2_tied": ("phi3", dict(heads=4, kv_heads=2, tie=True), 17),
    # OLMo-3: norms after each sublayer; layer 0 slides within 4 slots (default rope, theta 5e5), layer 1 attends
    # in full with YaRN (factor 16 over a 16-token pretraining context), untied.
    "olmo3_window4_yarn": (
        "olmo3",
        dict(heads=4, kv_heads=2, tie=False, sliding_window=4, layer_types=["sliding_attention", "full_attention"],
             rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 5e5},
                              "full_attention": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 16.0,
                                                 "original_max_position_embeddings": 16}}),
        18,
    ),
}


def fixture_input_ids(seed: int, vocab: int) -> list[int]:
    generator = torch.Generator().manual_seed(1000 + seed)
    return torch.randint(0, vocab, (FIXTURE_TOKENS,), generator=generator).tolist()


def write_fixture(name: str, architecture: str, options: dict, seed: int) -> Path:
    config = tiny_config(architecture, **options)
    model = random_tiny_model(config, seed)
    folder = FIXTURE_ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ids = fixture_input_ids(seed, config.vocab_size)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    expected = {
        "description": f"{architecture} tiny random checkpoint; transformers' eager float32 outputs",
        "transformers_version": __import__("transformers").__version__,
        "input_ids": ids,
        # 7 significant digits: <= 5e-7 relative (logits are a few units), far below the 1e-4 tolerance.
        "logits": [[float(f"{x:.7g}") for x in row] for row in logits.tolist()],
        "greedy_new_tokens": greedy_continuation(model, ids, FIXTURE_NEW_TOKENS),
    }
    (folder / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    for stray in folder.glob("generation_config.json"):
        stray.unlink()  # not needed by the C++ loader; keep the fixture minimal
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 200_000, f"{folder}: {size} bytes"
    return folder


def main(argv: list[str]) -> int:
    names = argv or list(FIXTURES)
    for name in names:
        architecture, options, seed = FIXTURES[name]
        folder = write_fixture(name, architecture, options, seed)
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder.relative_to(REPO)}: {size / 1000:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
