"""MiniLM embeddings vs sentence-transformers on the same weights, and the
counterfactual metrics running with the real embedder."""

import os

import pytest
import torch

import thought_anchors as ta

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "Okay, so I've got this math problem here that I need to solve.",
    "Let's start by labeling each layer for clarity.",
    "So, 3 times 29524 is 88572.",
    "Wait, that doesn't seem right; let me double-check the multiplication.",
    "The value of the expression is \\boxed{88572}.",
    "Café naïve résumé — ünïcödé and 日本語 and emoji 😀.",
    "",
    "   leading and trailing spaces   ",
    "a",
    " ".join(["This sentence is long enough to be truncated at 256 word pieces."] * 40),
]


@pytest.fixture(scope="module")
def reference_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_dir, device="cpu")


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    return ta.Embedder.load(minilm_dir)


def test_embeddings_match_sentence_transformers(embedder, reference_model):
    ours = embedder.embed_tensor(SENTENCES)
    theirs = reference_model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=False).float()
    assert ours.shape == theirs.shape == (len(SENTENCES), 384)
    cosines = torch.nn.functional.cosine_similarity(ours, theirs, dim=1)
    assert cosines.min().item() > 0.9999, cosines.tolist()
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)
    # The list form equals the tensor form, and batching does not change results.
    embedder.batch_size = 3
    assert torch.allclose(torch.tensor(embedder.embed(SENTENCES)), ours, atol=1e-5)


def test_counterfactual_metrics_with_real_embedder(embedder, reference_model, tmp_path):
    """Metrics with our embedder equal metrics with similarities computed by sentence-transformers."""
    import json

    from test_metrics import CHUNKS, ROLLOUTS, rollout

    d = tmp_path / "correct_base_solution" / "problem_9"
    d.mkdir(parents=True)
    solution = " ".join(CHUNKS)
    (d / "problem.json").write_text(json.dumps({"problem": "What is 7 + 5?", "gt_answer": "12"}))
    (d / "base_solution.json").write_text(json.dumps({"prompt": "p", "solution": solution, "answer": "12"}))
    (d / "chunks.json").write_text(json.dumps({"source_text": solution, "solution_text": solution, "chunks": CHUNKS}))
    for i, records in ROLLOUTS.items():
        (d / f"chunk_{i}").mkdir()
        (d / f"chunk_{i}" / "solutions.json").write_text(json.dumps([rollout(CHUNKS[i], r, a) for r, a in records]))
    rollouts = ta.read_rollouts(str(d))

    def reference_similarity(pairs):
        a = reference_model.encode([p[0] for p in pairs], convert_to_tensor=True)
        b = reference_model.encode([p[1] for p in pairs], convert_to_tensor=True)
        return torch.nn.functional.cosine_similarity(a, b, dim=1).tolist()

    ours = ta.resampling_metrics(rollouts, embedder)
    theirs = ta.resampling_metrics(rollouts, reference_similarity)
    for name in ta.ResamplingMetrics.series_names:
        assert torch.allclose(ours.series(name), theirs.series(name), atol=1e-6, equal_nan=True), name
    # "Let us guess." is far from "First we restate the problem.": those rollouts are different trajectories.
    assert ours.sentences[0].num_different == 2


def test_bad_embedder_folder(tmp_path):
    with pytest.raises(ta.Error, match="config.json"):
        ta.Embedder.load(str(tmp_path))
