"""Resampling metrics through the Python API, against a slow reference written here."""

import json
import math
import subprocess
from collections import Counter

import pytest

import thought_anchors as ta

CHUNKS = ["First we restate the problem.", "Then we add seven and five.", "So the total is twelve."]
GT = "12"


def rollout(chunk, resampled, answer):
    if answer is None:
        return {"error": "request timed out"}
    return {"chunk_removed": chunk, "chunk_resampled": resampled, "rollout": f"{resampled} The answer is \\boxed{{{answer}}}.",
            "answer": answer, "is_correct": answer == GT}


# Per chunk: (first resampled sentence, answer); None answer = an error record.
ROLLOUTS = {
    0: [("First we restate the problem.", "12"), ("Let us guess.", "13"), ("Let us guess.", "11"), ("First we restate the problem.", "12"), ("x", None)],
    1: [("Then we add seven and five.", "12"), ("We multiply instead.", "35"), ("Then we add seven and five.", "12"), ("Then we add seven and five.", "12")],
    2: [("So the total is twelve.", "12"), ("So the total is twelve.", "12"), ("Hmm, maybe thirteen.", "13")],
}


@pytest.fixture
def problem_dir(tmp_path):
    d = tmp_path / "correct_base_solution" / "problem_7"
    d.mkdir(parents=True)
    solution = " ".join(CHUNKS)  # chunks.json must be the segmentation of this text
    (d / "problem.json").write_text(json.dumps({"problem": "What is 7 + 5?", "gt_answer": GT}))
    (d / "base_solution.json").write_text(json.dumps({"prompt": "p", "solution": solution, "answer": GT, "is_correct": True}))
    (d / "chunks.json").write_text(json.dumps({"source_text": solution, "solution_text": solution, "chunks": CHUNKS}))
    for i, records in ROLLOUTS.items():
        (d / f"chunk_{i}").mkdir()
        (d / f"chunk_{i}" / "solutions.json").write_text(json.dumps([rollout(CHUNKS[i], r, a) for r, a in records]))
    return d


def same_text(pairs):
    return [1.0 if a == b else 0.0 for a, b in pairs]


def kl(p, q, alpha=1e-9):
    if not p or not q:
        return 0.0
    support = set(p) | set(q)
    np_, nq = sum(p.values()), sum(q.values())
    total = 0.0
    for a in support:
        pa = (p.get(a, 0) + alpha) / (np_ + alpha * len(support))
        qa = (q.get(a, 0) + alpha) / (nq + alpha * len(support))
        total += pa * math.log(pa / qa)
    return max(total, 0.0)


def slow_reference():
    """docs/design.md §3 resampling metrics, written out for this small folder (every chunk has data)."""
    valid = {i: [(r, a) for r, a in recs if a is not None] for i, recs in ROLLOUTS.items()}
    acc = lambda rs: sum(a == GT for _, a in rs) / len(rs)
    dist = lambda rs: Counter(a for _, a in rs)
    out = []
    for i in range(len(CHUNKS)):
        r_i = valid[i]
        row = {"accuracy": acc(r_i),
               "different_trajectories_fraction": sum(r != CHUNKS[i] for r, _ in r_i) / len(r_i),
               "overdeterminedness": 1 - len({r for r, _ in r_i}) / len(r_i)}
        if i + 1 < len(CHUNKS):
            r_n = valid[i + 1]
            d_i = [x for x in r_i if x[0] != CHUNKS[i]]
            s_i = [x for x in r_i if x[0] == CHUNKS[i]]
            row["resampling_importance_accuracy"] = acc(r_n) - acc(r_i)
            row["resampling_importance_kl"] = kl(dist(r_i), dist(r_n))
            row["counterfactual_importance_accuracy"] = acc(d_i) - acc(r_n)
            row["counterfactual_importance_kl"] = kl(dist(d_i), dist(r_n + s_i))
        out.append(row)
    return out


def all_texts():
    """Every sentence the metrics compare: chunks, first resampled sentences and
    (for the sentence-to-sentence matrix) every sentence of every rollout."""
    texts = {r for recs in ROLLOUTS.values() for r, _ in recs} | set(CHUNKS)
    for recs in ROLLOUTS.values():
        for r, a in recs:
            if a is not None:
                texts |= {s.text for s in ta.split_sentences(f"{r} The answer is \\boxed{{{a}}}.", drop_shorter_than=0)}
    return texts


@pytest.mark.parametrize("kind", ["dict", "callable", "embedder"])
def test_metrics_equal_slow_reference(problem_dir, kind):
    rollouts = ta.read_rollouts(str(problem_dir))
    assert [s.num_errors for s in rollouts.resampled] == [1, 0, 0]
    texts = all_texts()
    if kind == "dict":
        similarity = {(a, b): float(a == b) for a in texts for b in texts}
    elif kind == "callable":
        similarity = same_text
    else:
        ordered = sorted(texts)

        class OneHot:  # orthogonal embeddings: cosine 1 for equal texts, 0 otherwise
            def embed(self, batch):
                return [[1.0 if t == u else 0.0 for u in ordered] for t in batch]

        similarity = OneHot()
    progress = []
    metrics = ta.resampling_metrics(rollouts, similarity,
                                    progress=lambda done, total, unit: progress.append((done, total, unit)))
    assert progress and progress[-1][0] == progress[-1][1] and progress[-1][2] == "steps"
    expected = slow_reference()
    assert len(metrics) == len(expected)
    for got, want in zip(metrics.sentences, expected):
        for name in ta.ResamplingMetrics.series_names:
            value = getattr(got, name, None)
            if name in want:
                assert value == pytest.approx(want[name], abs=1e-12), name
    last = metrics.sentences[-1]
    assert math.isnan(last.resampling_importance_accuracy)  # no next sentence: no value, not 0
    assert metrics.sentences[0].num_errors == 1 and metrics.sentences[0].num_rollouts == 4


def test_attribution_and_reference_outputs(problem_dir, tmp_path):
    rollouts = ta.read_rollouts(str(problem_dir))
    metrics = ta.resampling_metrics(rollouts, same_text)
    attribution = metrics.to_attribution()
    assert attribution.method == "resampling"
    assert attribution.score("accuracy").tolist() == [s.accuracy for s in metrics.sentences]
    out = tmp_path / "out"
    ta.write_reference_outputs(rollouts, metrics, str(out))
    labeled = json.loads((out / "chunks_labeled.json").read_text())
    assert [c["chunk"] for c in labeled] == CHUNKS
    assert labeled[0]["accuracy"] == pytest.approx(0.5)
    assert (out / "step_importance.json").exists() and (out / "summary.json").exists()


def test_bad_similarity_inputs(problem_dir):
    rollouts = ta.read_rollouts(str(problem_dir))
    with pytest.raises(ta.Error, match="returned 1 values for"):
        ta.resampling_metrics(rollouts, lambda pairs: [0.0])
    with pytest.raises(ta.Error):
        ta.resampling_metrics(rollouts, {})  # a missing pair in a precomputed table
    with pytest.raises(ta.Error, match="similarity must be"):
        ta.resampling_metrics(rollouts, 3)
    with pytest.raises(ta.Error, match="correctness"):
        ta.resampling_metrics(rollouts, same_text, correctness="vibes")


def test_cli_metrics_writes_reference_schema_and_result(problem_dir, tmp_path, anchors_cli):
    texts = all_texts()
    table = [[a, b, float(a == b)] for a in texts for b in texts]
    sims = tmp_path / "sims.json"
    sims.write_text(json.dumps(table))
    out = tmp_path / "cli_out"
    run = subprocess.run([anchors_cli, "metrics", str(problem_dir), "--similarities", str(sims), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "metrics: " in run.stderr and "steps" in run.stderr  # progress on stderr
    for name in ["chunks_labeled.json", "step_importance.json", "summary.json", "result.json"]:
        assert (out / name).exists(), name
    result = ta.load_result(str(out / "result.json"))
    assert [s.text for s in result.trace.sentences] == CHUNKS
    assert result.attribution("resampling").score("accuracy").tolist()[0] == pytest.approx(0.5)
    missing = subprocess.run([anchors_cli, "metrics", str(problem_dir)], capture_output=True, text=True)
    assert missing.returncode == 2 and "--similarities" in missing.stderr
