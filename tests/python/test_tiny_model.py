"""The embedded default model, models/tiny-reasoner, and its data generator (scripts/tiny_model).

- corpus: reproducible per seed, every sentence type of the taxonomy present, the reference
  segmentation recovers exactly the generated sentences, held-out problems never trained on;
- tokenizer: thought_anchors.Tokenizer gives HF `tokenizers`' ids (and decodes back) on held-out text;
- model: thought_anchors.Model's float32 logits match transformers' Qwen2ForCausalLM (< 1e-4);
- generation: greedy and sampled completions of held-out problems carry a parsable \\boxed{}.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as HfTokenizer

import transformers  # noqa: E402  (a missing reference is an error, never a skip)
import thought_anchors as ta

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "tiny-reasoner"
sys.path.insert(0, str(REPO / "scripts" / "tiny_model"))
import corpus  # noqa: E402


# --- corpus -------------------------------------------------------------------------------------

def test_corpus_is_reproducible_per_seed():
    first = [e.text() for e in itertools.islice(corpus.training_examples(3), 40)]
    again = [e.text() for e in itertools.islice(corpus.training_examples(3), 40)]
    other = [e.text() for e in itertools.islice(corpus.training_examples(4), 40)]
    assert first == again
    assert first != other
    assert corpus.heldout_problems(20, 0) == corpus.heldout_problems(20, 0)


def test_traces_have_every_sentence_type_and_segment_as_generated():
    examples = list(itertools.islice(corpus.training_examples(0), 300))
    seen = set()
    for e in examples:
        sentences = [s.text for s in ta.split_sentences(e.cot)]
        assert sentences == [text for _, text in e.sentences], e.cot
        assert 8 <= len(sentences) <= 15
        assert e.tags[0] == "problem_setup" and e.tags[-1] == "final_answer_emission"
        assert "active_computation" in e.tags and "plan_generation" in e.tags
        seen.update(e.tags)
    assert seen == set(corpus.TAGS)
    # every "Wait, ..." correction follows a wrong computation and gives the right one
    wrong = [e for e in examples if "uncertainty_management" in e.tags]
    assert 0.05 * len(examples) < len(wrong) < 0.5 * len(examples)


def test_example_format_is_the_reference_raw_prompt():
    e = next(corpus.training_examples(0))
    text = e.text()
    assert text.startswith("Solve this math problem step by step. You MUST put your final answer in \\boxed{}. "
                           f"Problem: {e.problem} Solution: \n<think>\n")
    assert text.endswith(f"\n</think>\n\nThe answer is \\boxed{{{e.answer}}}.<|endoftext|>")
    assert ta.extract_boxed(text) == str(e.answer)
    assert e.problem_json() == {"problem": e.problem, "gt_answer": str(e.answer)}


def test_heldout_problems_are_never_trained_on():
    heldout = {p["problem"] for p in corpus.heldout_problems(corpus.HELDOUT_RESERVED)}
    training = [e.problem for e in itertools.islice(corpus.training_examples(0), 3000)]
    assert not heldout.intersection(training)
    assert len(set(training)) > 2000  # the generator is not a handful of problems


# --- the shipped model ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ours():
    return ta.Model.load(str(MODEL), dtype=torch.float32, device="cpu")


def heldout_texts(n: int) -> list[str]:
    return [e.text() for e in corpus.heldout_examples(n)]


def test_files_and_tokenizer_layout():
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "README.md"):
        assert (MODEL / name).is_file(), name
    assert (MODEL / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    spec = json.loads((MODEL / "tokenizer.json").read_text())
    pre = spec["pre_tokenizer"]
    assert pre["type"] == "Sequence"
    assert [p["type"] for p in pre["pretokenizers"]] == ["Split", "ByteLevel"]
    assert pre["pretokenizers"][0]["pattern"]["Regex"] == (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"""
        r"""\s+(?!\S)|\s+""")
    assert spec["decoder"]["type"] == "ByteLevel"
    specials = {t["content"] for t in spec["added_tokens"] if t["special"]}
    assert specials == {"<|endoftext|>", "<think>", "</think>"}


def test_tokenizer_matches_hf_tokenizers(ours):
    hf = HfTokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok = ours.tokenizer
    assert tok.eos_id == hf.token_to_id("<|endoftext|>")
    texts = heldout_texts(40) + ["Wait, 1234 + 5678 = 6912?  Let me check:\n\n  it is. 🙂 café </think>"]
    for text in texts:
        want = hf.encode(text).ids
        got = list(tok.encode(text, add_special_tokens=False).ids)
        assert got == want, text[:80]
        assert tok.decode(got, skip_special_tokens=False) == hf.decode(want, skip_special_tokens=False)
    # "<think>" and "</think>" are single tokens, digits are split one by one
    ids = tok.encode("<think>\n123\n</think>", add_special_tokens=False).ids
    assert len(ids) == 7


def test_out_of_range_ids_and_seeds(ours):
    """decode skips ids past the vocabulary as HF does, and refuses negative ids as HF does (OverflowError
    there, ta.Error here); a seed outside [0, 2**64 - 1] is ta.Error naming it, not pybind11's TypeError."""
    hf = HfTokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok = ours.tokenizer
    a = tok.encode("a", add_special_tokens=False).ids[0]
    assert tok.decode([a, 10**6]) == hf.decode([a, 10**6]) == "a"
    with pytest.raises(OverflowError):
        hf.decode([a, -1])
    with pytest.raises(ta.Error, match="token id -1 at position 1 is negative"):
        tok.decode([a, -1])
    for seed in (-1, 2**64):
        with pytest.raises(ta.Error, match=rf"seed {seed} is outside \[0, 2\*\*64 - 1\]"):
            ours.sample([a], 1, max_new_tokens=1, seed=seed)
    assert len(ours.sample([a], 1, max_new_tokens=1, seed=2**64 - 1)) == 1


def test_logits_match_transformers(ours):
    hf_model = transformers.Qwen2ForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32)
    hf_model.eval()
    ids = torch.tensor(ours.tokenizer.encode(heldout_texts(1)[0], add_special_tokens=False).ids)
    with torch.no_grad():
        expected = hf_model(ids[None]).logits[0].float()
    got = ours.logits(ids)
    assert got.shape == expected.shape
    diff = (got - expected).abs().max().item()
    print(f"fp32 max |ours - transformers| = {diff:.3g} over {len(ids)} tokens")
    assert diff < 1e-4


def test_generations_have_a_boxed_answer(ours):
    tok = ours.tokenizer
    problems = corpus.heldout_problems(3)
    prompts = [tok.encode(corpus.PROMPT_TEMPLATE.format(problem=p["problem"]), add_special_tokens=False).ids
               for p in problems]
    for prompt in prompts[:2]:
        new = ours.generate_greedy(prompt, 400, tok.eos_id)
        text = tok.decode(list(new), skip_special_tokens=False)
        assert "</think>" in text and ta.extract_boxed(text), text
        assert len(ta.split_sentences(text.split("</think>")[0])) >= 6
    samples = ours.sample(prompts[2], 3, temperature=0.6, top_p=0.95, max_new_tokens=400, seed=1,
                          stop_ids=[tok.eos_id])
    for s in samples:
        assert ta.extract_boxed(s.text), s.text


def test_quick_training_smoke(tmp_path):
    """scripts/tiny_model/train.py --quick end to end (a few tiny steps): the folder loads in our runtime."""
    import subprocess

    out = tmp_path / "tiny"
    subprocess.run([sys.executable, str(REPO / "scripts" / "tiny_model" / "train.py"), "--quick", "--steps", "3",
                    "--batch", "2", "--out", str(out)], check=True, capture_output=True, timeout=300,
                   env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    model = ta.Model.load(str(out))
    assert model.config.architecture_name == "Qwen2ForCausalLM" and model.tokenizer.eos_id == 0
    ids = model.tokenizer.encode(corpus.heldout_examples(1)[0].text(), add_special_tokens=False).ids
    assert torch.isfinite(model.logits(torch.tensor(ids))).all()
