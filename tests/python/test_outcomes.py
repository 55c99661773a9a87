"""Outcomes (docs/outcomes.md) end to end: every built-in outcome, a user-written Python outcome and a
chat judge on a loopback server label every rollout record exactly as the outcome reads its text, the
outcome never changes what is generated, and bad input is a clear ta.Error."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import thought_anchors as ta

from conftest import REPO, LoopbackHandler, loopback

PROBLEM = ta.embedded_problem()  # {"problem": ..., "gt_answer": "57"}


@pytest.fixture(scope="module")
def model():
    return ta.load_embedded_model()


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    return ta.Embedder.load(minilm_dir)


def run_analyze(model, embedder, out: Path, outcome, forced=True):
    return ta.analyze(model, PROBLEM, str(out), num_rollouts=4, forced=forced, seed=0, max_tokens=160,
                      similarity=embedder, outcome=outcome)


def solution_records(out: Path, forced: bool) -> dict[str, list[dict]]:
    kind = "*_base_solution_forced_answer" if forced else "*_base_solution"
    return {str(p.relative_to(out)).split("/", 1)[1]: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(out.glob(f"{kind}/problem_*/chunk_*/solutions.json"))}


def check_labels(out: Path, outcome, gt: str):
    """Every record's answer / is_correct is the outcome's reading of its text."""
    outcome = outcome or ta.BoxedAnswer()
    for forced in (False, True):
        records = solution_records(out, forced)
        assert records, f"no {'forced ' if forced else ''}rollouts under {out}"
        for chunk, rows in records.items():
            for r in rows:
                text = (outcome.forced_stub() if forced else "") + r["rollout"]
                label = outcome.label(text)
                assert r["answer"] == (label or ""), (chunk, r["rollout"][-80:])
                assert r["is_correct"] == (label is not None and outcome.matches(label, gt)), chunk


class Parity(ta.Outcome):
    def name(self):
        return "parity"

    def label(self, text):
        m = re.search(r"\\boxed\{(-?\d+)\}", text)
        return None if m is None else ("even" if int(m.group(1)) % 2 == 0 else "odd")


def test_every_outcome_labels_the_records_it_reads(model, embedder, tmp_path):
    outcomes = {
        "boxed": None,
        "regex": ta.RegexOutcome(r"\\boxed\{(-?\d+)\}"),
        "choice": ta.MultipleChoice("ABCD"),
        "function": ta.FunctionOutcome(lambda text: "long" if len(text) > 120 else "short", name="length"),
        "class": Parity(),
    }
    results = {}
    for key, outcome in outcomes.items():
        out = tmp_path / key
        results[key] = run_analyze(model, embedder, out, outcome)
        check_labels(out, outcome, PROBLEM["gt_answer"])
        expected = "boxed" if outcome is None else outcome.name()
        assert results[key].attribution("resampling").metadata["outcome"] == expected
    # The outcome reads rollouts; it does not change them (the forced ones follow its own stub).
    texts = {key: {k: [r["rollout"] for r in v] for k, v in solution_records(tmp_path / key, False).items()}
             for key in outcomes}
    assert all(texts[key] == texts["boxed"] for key in outcomes)
    # Boxed integers read by the regex give the same correctness as \boxed{} answers where both decide.
    boxed = results["boxed"].attribution("resampling").score("accuracy")
    regex = results["regex"].attribution("resampling").score("accuracy")
    assert boxed.isnan().tolist() == regex.isnan().tolist()
    assert boxed.nan_to_num(-1).tolist() == regex.nan_to_num(-1).tolist()
    assert not boxed.isnan().all()
    # No rollout of the arithmetic model names a choice: no label, so no accuracy anywhere.
    choice = results["choice"].attribution("resampling").score("accuracy")
    assert all(v != v for v in choice.tolist())
    # Log-odds series exist for every outcome.
    assert "counterfactual_importance_logodds" in results["class"].attribution("resampling").scores


def test_docs_example_outcome_runs():
    text = (REPO / "docs" / "outcomes.md").read_text(encoding="utf-8")
    block = text.split("<!-- example: outcome -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "docs/outcomes.md", "exec"), namespace)
    assert namespace["outcome"].name() == "parity"


def test_outcome_bad_input_is_a_clear_error(model, embedder, tmp_path):
    with pytest.raises(ta.Error, match="no capture group"):
        ta.RegexOutcome(r"ANSWER: \w+")
    with pytest.raises(ta.Error, match="does not compile"):
        ta.RegexOutcome("(unclosed")
    with pytest.raises(ta.Error, match="unknown outcome"):
        ta.outcome_from_spec("bogus")
    with pytest.raises(ta.Error, match="repeats"):
        ta.MultipleChoice("ABA")
    with pytest.raises(ta.Error, match="outcome must be"):
        ta.Resampling(provider=model, outcome=42)
    # A Python outcome that raises, or returns the wrong type, fails the run with its message.
    with pytest.raises(ta.Error, match="division by zero"):
        run_analyze(model, embedder, tmp_path / "raises", ta.FunctionOutcome(lambda text: str(1 / 0)), forced=False)
    with pytest.raises(ta.Error, match="expected a str or None"):
        run_analyze(model, embedder, tmp_path / "type", ta.FunctionOutcome(lambda text: 7), forced=False)

    class NoLabel(ta.Outcome):
        pass

    with pytest.raises(ta.Error, match="does not implement label"):
        NoLabel().label("x")


# ---------------------------------------------------------------------------
# A chat judge on a loopback server
# ---------------------------------------------------------------------------

class Judge(LoopbackHandler):
    """Says "Yes." when the rollout in the prompt boxes the target, else "No"; misbehaves on demand."""

    target = "57"
    mode = "ok"          # ok | bad_json | flaky | slow
    calls = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.json_body()
        type(self).calls += 1
        if self.mode == "flaky" and type(self).calls % 2 == 1:
            self.send_response(503)
            self.end_headers()
            return
        if self.mode == "slow":
            time.sleep(1.5)
        text = body["messages"][-1]["content"]
        verdict = "Yes." if f"\\boxed{{{self.target}}}" in text else "No"
        self.reply(b"{not json" if self.mode == "bad_json" else
                   {"model": body["model"], "choices": [{"message": {"role": "assistant", "content": verdict}}]})


@pytest.fixture
def judge_server():
    Judge.mode, Judge.calls = "ok", 0
    with loopback(Judge) as url:
        yield url


def test_chat_judge_labels_caches_and_retries(judge_server):
    judge = ta.ChatJudge(judge_server, model="judge", labels=["yes", "no"], backoff_base=0.01, backoff_max=0.05)
    assert judge.classify("so \\boxed{57}") == ("yes", "Yes.")
    assert judge.classify("so \\boxed{56}") == ("no", "No")
    assert judge.classify("so \\boxed{57}") == ("yes", "Yes.")
    assert judge.requests == 2 and Judge.calls == 2          # the repeated text came from the cache
    assert judge.matches("YES", "yes") and not judge.matches("no", "yes")
    Judge.mode = "flaky"                                      # every other request is a 503: retried
    assert judge.label("\\boxed{57} again") == "yes"
    Judge.mode = "bad_json"
    with pytest.raises(ta.Error, match="malformed"):
        judge.label("a new text")
    Judge.mode = "slow"
    slow = ta.ChatJudge(judge_server, timeout=0.3, max_retries=1, backoff_base=0.01, backoff_max=0.02)
    with pytest.raises(ta.Error, match="giving up|timed out|Read|read"):
        slow.label("a text")
    with pytest.raises(ta.Error, match="text"):
        ta.ChatJudge(judge_server, prompt="no placeholder")
    assert ta.outcome_from_spec(f"judge:{judge_server}").name() == f"judge:{judge_server}"


def test_chat_judge_end_to_end_keeps_its_raw_answers(model, embedder, tmp_path, judge_server):
    judge = ta.ChatJudge(judge_server, model="judge", labels=["yes", "no"])
    problem = dict(PROBLEM, gt_answer="yes")
    ta.analyze(model, problem, str(tmp_path / "judged"), num_rollouts=3, seed=0, max_tokens=160,
               similarity=embedder, outcome=judge)
    boxed = ta.BoxedAnswer()
    records = solution_records(tmp_path / "judged", False)
    assert records
    for rows in records.values():
        for r in rows:
            said = "yes" if "\\boxed{57}" in r["rollout"] else "no"
            assert r["answer"] == said and r["outcome_raw"] in ("Yes.", "No")
            assert r["is_correct"] == (said == "yes")
            assert (said == "yes") == (boxed.label(r["rollout"]) == "57" or "\\boxed{57}" in r["rollout"])
    assert judge.requests <= sum(len(rows) for rows in records.values()) + 1  # + the base solution


def test_cli_outcome_option(anchors_cli, minilm_dir, tmp_path):
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(PROBLEM), encoding="utf-8")
    base = [anchors_cli, "analyze", "--model", ta.embedded_model_path(), "--problem", str(problem),
            "--embedder", minilm_dir, "--rollouts", "2", "--max-tokens", "160", "--quiet"]
    done = subprocess.run(base + ["--out", str(tmp_path / "regex"), "--outcome", r"regex:\\boxed\{(\d+)\}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = list((tmp_path / "regex").glob("*_base_solution/problem_*/result.json"))
    assert json.loads(result.read_text())["attributions"][0]["metadata"]["outcome"] == r"regex:\\boxed\{(\d+)\}"
    check_labels_plain = solution_records(tmp_path / "regex", False)
    rx = ta.RegexOutcome(r"\\boxed\{(\d+)\}")
    assert all(r["answer"] == (rx.label(r["rollout"]) or "") for rows in check_labels_plain.values() for r in rows)
    for spec, message in (("bogus", "unknown outcome"), ("regex:no group", "no capture group"),
                          ("choice:AA", "repeats")):
        bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--outcome", spec], capture_output=True,
                             text=True, timeout=120)
        assert bad.returncode != 0 and message in bad.stderr, (spec, bad.stderr)
    bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--judge-model", "x"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "--outcome judge:URL" in bad.stderr


def test_rescoring_with_another_outcome_equals_generating_with_it(model, embedder, tmp_path, anchors_cli):
    """The labels live in the records: re-reading boxed rollouts as Parity gives exactly the metrics of a run
    made with Parity (no forced rollouts: those continue after the outcome's own stub)."""
    boxed = run_analyze(model, embedder, tmp_path / "boxed", None, forced=False)
    parity_problem = dict(PROBLEM, gt_answer="odd")  # 57 is odd
    direct = ta.analyze(model, parity_problem, str(tmp_path / "parity"), num_rollouts=4, seed=0, max_tokens=160,
                        similarity=embedder, outcome=Parity())
    [folder] = list((tmp_path / "boxed").glob("*_base_solution/problem_*"))
    # The same rollouts with the parity target ("odd") in problem.json.
    copy = tmp_path / "copy" / folder.parent.name / folder.name
    shutil.copytree(folder, copy)
    problem_json = json.loads((copy / "problem.json").read_text(encoding="utf-8"))
    (copy / "problem.json").write_text(json.dumps(dict(problem_json, gt_answer="odd")), encoding="utf-8")
    rollouts = ta.read_rollouts(str(copy))
    rescored = ta.resampling_metrics(rollouts, embedder, outcome=Parity(), correctness="recomputed")
    ours = rescored.to_attribution()
    theirs = direct.attribution("resampling")
    for name in ("accuracy", "resampling_importance_logodds", "counterfactual_importance_kl"):
        a, b = ours.score(name), theirs.score(name)
        assert a.isnan().tolist() == b.isnan().tolist() and a.nan_to_num(9).tolist() == b.nan_to_num(9).tolist(), name
    # The CLI re-scores a folder the same way: the regex spelling of boxed integers gives the boxed accuracies.
    rollouts = ta.read_rollouts(str(folder))
    pairs = {(c, r.chunk_resampled) for c in rollouts.chunks for s in rollouts.resampled for r in s.rollouts}
    (tmp_path / "sims.json").write_text(json.dumps([[a, b, float(a == b)] for a, b in pairs]), encoding="utf-8")
    results = {}
    for name, extra in (("boxed", []), ("regex", ["--outcome", r"regex:\\boxed\{(\d+)\}"])):
        done = subprocess.run([anchors_cli, "metrics", str(folder), "--similarities", str(tmp_path / "sims.json"),
                               "--out", str(tmp_path / f"cli_{name}"), "--no-matrix", "--quiet", *extra],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results[name] = ta.load_result(str(tmp_path / f"cli_{name}" / "result.json")).attribution("resampling")
    assert results["regex"].metadata["outcome"] == r"regex:\\boxed\{(\d+)\}"
    a, b = results["boxed"].score("accuracy"), results["regex"].score("accuracy")
    assert a.isnan().tolist() == b.isnan().tolist() and a.nan_to_num(9).tolist() == b.nan_to_num(9).tolist()
    bad = subprocess.run([anchors_cli, "metrics", str(folder), "--similarities", str(tmp_path / "sims.json"),
                          "--out", str(tmp_path / "bad"), "--outcome", "judge:http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "chat judge" in bad.stderr
