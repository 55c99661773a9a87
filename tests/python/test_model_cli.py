"""`anchors inspect` and `anchors tokenize` on checkpoints made at test time."""

import json
import subprocess

import pytest

import thought_anchors as ta


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False)
    path = tmp_path_factory.mktemp("qwen2")
    Qwen2ForCausalLM(config).save_pretrained(path, safe_serialization=True)
    return path, sum(p.numel() for p in Qwen2ForCausalLM(config).parameters())


def test_inspect_reports_shape_and_parameters(anchors_cli, tiny_qwen2):
    path, parameters = tiny_qwen2
    out = subprocess.run([anchors_cli, "inspect", str(path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["architecture"] == "Qwen2ForCausalLM"
    assert (doc["layers"], doc["hidden_size"], doc["attention_heads"], doc["key_value_heads"]) == (2, 64, 4, 2)
    assert doc["parameters"] == parameters
    text = subprocess.run([anchors_cli, "inspect", str(path)], capture_output=True, text=True).stdout
    assert "qwen2: 2 layers" in text and "untied" in text


def test_inspect_shows_experts_and_nope_layers(anchors_cli):
    """The routed layers of a Qwen3-MoE checkpoint and the layers without RoPE of a SmolLM3 one, as transformers
    builds them from the same config.json."""
    from pathlib import Path

    import transformers

    fixtures = Path(__file__).resolve().parents[1] / "data" / "tiny_models"
    moe = subprocess.run([anchors_cli, "inspect", str(fixtures / "qwen3moe_top2of4_dense1"), "--json"],
                         capture_output=True, text=True)
    assert moe.returncode == 0, moe.stderr
    doc = json.loads(moe.stdout)
    hf = transformers.AutoConfig.from_pretrained(fixtures / "qwen3moe_top2of4_dense1")
    assert doc["experts"] == {"experts": hf.num_experts, "per_token": hf.num_experts_per_tok,
                              "intermediate_size": hf.moe_intermediate_size, "layers": [0]}
    assert "nope_layers" not in doc
    smol = subprocess.run([anchors_cli, "inspect", str(fixtures / "smollm3_nope1_tied")], capture_output=True,
                          text=True)
    assert smol.returncode == 0, smol.stderr
    assert "no RoPE        layers 1" in smol.stdout and "experts" not in smol.stdout


def test_tokenize_minilm_matches_hf(anchors_cli, minilm_dir):
    from tokenizers import Tokenizer as HFTokenizer

    text = "Héllo wörld, 12345 日本 😀!"
    out = subprocess.run([anchors_cli, "tokenize", minilm_dir, text, "--json", "--special"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tokens = json.loads(out.stdout)
    reference = HFTokenizer.from_file(f"{minilm_dir}/tokenizer.json")
    reference.no_padding()  # the file pads to 128; encode() never pads or truncates
    reference.no_truncation()
    hf = reference.encode(text)
    assert [t["id"] for t in tokens] == hf.ids
    assert [(t["char_start"], t["char_end"]) for t in tokens] == [tuple(o) for o in hf.offsets]


def test_model_commands_fail_cleanly(anchors_cli, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    out = subprocess.run([anchors_cli, "inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "config.json" in out.stderr
    out = subprocess.run([anchors_cli, "tokenize", str(tmp_path / "missing"), "x"], capture_output=True, text=True)
    assert out.returncode == 1 and "missing" in out.stderr


def test_inspect_names_the_nearest_supported_architecture(anchors_cli, tmp_path):
    """A real transformers config of an unsupported family: the error names it and its nearest supported sibling."""
    from transformers import Olmo2Config

    config = Olmo2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         vocab_size=64)
    config.architectures = ["Olmo2ForCausalLM"]  # as a checkpoint saved with its model has
    config.save_pretrained(tmp_path)
    out = subprocess.run([anchors_cli, "inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "Olmo2ForCausalLM" in out.stderr and "nearest: Olmo3ForCausalLM" in out.stderr, out.stderr
    with pytest.raises(ta.Error, match="nearest: Olmo3ForCausalLM"):
        ta.Model.load(str(tmp_path))
