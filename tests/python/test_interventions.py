"""Prefix interventions (docs/interventions.md): every kind builds exactly the prefix its definition
states and sends exactly the ids the tokenizer (the `tokenizers` package, independently) gives for
prompt + prefix; outcome rates and shifts are those of the rollouts; a SIGKILLed run resumes with no
lost or duplicated rollouts; bad input is a clear ta.Error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tokenizers

import thought_anchors as ta
from conftest import LoopbackHandler, loopback

PROBLEM = "What is 2 + 3?"
SOLUTION = ("I need to add 2 and 3. First, I start from 2.\n\nThen 2 + 3 = 5. Let me check: 5 - 3 = 2. "
            "So the answer is 5.\n</think>\n\nThe answer is \\boxed{5}.")
INSERTED = "Wait, let me re-check."


@pytest.fixture(scope="module")
def model():
    return ta.load_embedded_model()


@pytest.fixture(scope="module")
def hf_tokenizer():
    return tokenizers.Tokenizer.from_file(str(Path(ta.embedded_model_path()) / "tokenizer.json"))


def make_trace():
    return ta.Trace.from_text(SOLUTION, metadata={"problem": PROBLEM, "gt_answer": "5"})


def expected_prefix(trace, kind, i, text=""):
    """The definitions of docs/interventions.md, written out on code point offsets."""
    s = trace.sentences
    t = trace.text

    def gap(k):
        end = s[k].char_end
        nxt = s[k + 1].char_start if k + 1 < len(s) else len(t)
        g = t[end:nxt]
        g = g[: len(g) - len(g.lstrip(" \t\r\n"))] if g.strip(" \t\r\n") else g
        return g or " "

    before = t[: s[i].char_start]
    through = t[: s[i].char_end] + gap(i)
    return {"resample": before, "truncate": through, "insert": through + text + gap(i),
            "substitute": before + text + gap(i),
            "delete": before + t[s[i + 1].char_start: s[i + 1].char_end] + gap(i + 1) if i + 1 < len(s) else None}[kind]


class Server(LoopbackHandler):
    """A /v1/completions server that records prompts and answers 5 only after the inserted text."""

    requests: list = []
    decode = None

    def do_POST(self):  # noqa: N802
        body = self.json_body()
        type(self).requests.append(body)
        text = type(self).decode(body["prompt"])
        answer = "5" if INSERTED in text else "6"
        self.reply({"choices": [{"index": k, "text": f" So \\boxed{{{answer}}}.", "finish_reason": "stop"}
                                for k in range(body["n"])]})


@pytest.fixture
def server(hf_tokenizer):
    Server.requests = []
    Server.decode = staticmethod(lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=False))
    with loopback(Server) as url:
        yield url


def test_every_kind_sends_the_exact_prefix_ids(model, hf_tokenizer, server, tmp_path):
    trace = make_trace()
    assert len(trace.sentences) >= 5
    edits = [ta.Insert(1, INSERTED), ta.Substitute(2, INSERTED), ta.Delete(1), ta.Truncate(3), ta.Resample(4)]
    prompt = ta.render_prompt(model.tokenizer, "raw", PROBLEM).text
    for e in edits:
        assert e.prefix(trace) == expected_prefix(trace, e.kind, e.sentence, e.text), e
    result = ta.intervene(trace, ta.OpenAIProvider(server), edits, tokenizer=model, num_rollouts=3, batch=3,
                          out_dir=str(tmp_path / "out"))
    sent = {tuple(r["prompt"]) for r in Server.requests}
    stub = ta.BoxedAnswer().forced_stub()  # truncate: the chain cut, then the answer forced
    for e in edits + [ta.Resample(1), ta.Resample(2), ta.Resample(3)]:
        text = prompt + expected_prefix(trace, e.kind, e.sentence, e.text) + (stub if e.kind == "truncate" else "")
        ids = hf_tokenizer.encode(text).ids
        assert tuple(ids) in sent, e
    assert len(sent) == len(Server.requests) == 8  # 5 edits + baselines 1, 2, 3 (resample(4) is its own)
    by_id = {e["id"]: e for e in result.edits}
    insert = by_id[ta.Insert(1, INSERTED).id]
    assert insert["num_rollouts"] == 3 and insert["rate"] == 1.0 and insert["baseline_rate"] == 0.0
    assert insert["rate_shift"] == 1.0 and insert["kl_from_baseline"] > 1
    assert insert["labels"] == {"5": 3}
    assert by_id[ta.Substitute(2, INSERTED).id]["rate"] == 1.0
    assert by_id[ta.Delete(1).id]["rate"] == 0.0 and by_id[ta.Delete(1).id]["rate_shift"] == 0.0
    assert by_id[ta.Resample(4).id]["rate_shift"] != by_id[ta.Resample(4).id]["rate_shift"]  # NaN: no baseline
    assert [b["sentence"] for b in result.baselines] == [1, 2, 3]
    # The records are the authors' format, with the edited prefix.
    records = json.loads((tmp_path / "out" / insert["id"] / "chunk_0" / "solutions.json").read_text())
    assert [r["sample_index"] for r in records] == [0, 1, 2]
    assert all(r["prefix_without_chunk"] == insert["prefix"] and r["answer"] == "5" and r["is_correct"]
               for r in records)
    # A second run resumes: nothing is generated again.
    again = ta.intervene(trace, ta.OpenAIProvider(server), edits, tokenizer=model, num_rollouts=3, batch=3,
                         out_dir=str(tmp_path / "out"))
    assert again.generated == 0 and len(Server.requests) == 8
    assert [e["rate"] for e in again.edits] == [e["rate"] for e in result.edits]


RUNNER = """
import sys, thought_anchors as ta
trace = ta.Trace.from_text({solution!r}, metadata={{"problem": {problem!r}, "gt_answer": "5"}})
edits = [ta.Insert(1, {inserted!r}), ta.Substitute(2, {inserted!r}), ta.Delete(3), ta.Truncate(0)]
ta.intervene(trace, ta.load_embedded_model(), edits, num_rollouts=40, batch=4, max_tokens=48, seed=7,
             out_dir=sys.argv[1])
"""


def solutions(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/chunk_0/solutions.json"))}


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(solution=SOLUTION, problem=PROBLEM, inserted=INSERTED), encoding="utf-8")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(whole)], check=True, timeout=600)
    proc = subprocess.Popen([sys.executable, str(script), str(killed)])
    deadline = time.time() + 300
    while time.time() < deadline and len(solutions(killed)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = solutions(killed)
    assert partial and partial != solutions(whole), "killed before any or after all work: the test proves nothing"
    subprocess.run([sys.executable, str(script), str(killed)], check=True, timeout=600)
    assert solutions(killed) == solutions(whole)  # byte-identical: same seeds, nothing lost or duplicated
    for data in solutions(killed).values():
        assert sorted(r["sample_index"] for r in json.loads(data)) == list(range(40))


def test_bad_input_is_a_clear_error(model, tmp_path):
    trace = make_trace()
    n = len(trace.sentences)
    cases = [
        ([ta.Insert(n, "x")], "sentences"),
        ([ta.Delete(n - 1)], "last sentence"),
        ([ta.Intervention("insert", 1)], "no text"),
        ([ta.Intervention("resample", 1, "x")], "takes no text"),
        ([ta.Delete(1), ta.Delete(1)], "twice"),
        ([], "no interventions"),
    ]
    for edits, message in cases:
        with pytest.raises(ta.Error, match=message):
            ta.intervene(trace, model, edits, num_rollouts=1, max_tokens=4, out_dir=str(tmp_path / "bad"))
    with pytest.raises(ta.Error, match="unknown intervention"):
        ta.Intervention("rewrite", 1)
    with pytest.raises(ta.Error, match="interventions must be"):
        ta.intervene(trace, model, ["insert"], num_rollouts=1)
    with pytest.raises(ta.Error, match="num_rollouts"):
        ta.intervene(trace, model, [ta.Delete(1)], num_rollouts=0)
    with pytest.raises(ta.Error, match="no prompt"):
        ta.intervene(ta.Trace.from_text(SOLUTION), model, [ta.Delete(1)], num_rollouts=1)
    # A folder made for another trace is not mixed with this one.
    folder = str(tmp_path / "mixed")
    ta.intervene(trace, model, [ta.Delete(1)], num_rollouts=1, max_tokens=4, out_dir=folder)
    # (An edit of sentence 1 leaves the prefix of delete(1) unchanged: that folder may be shared.)
    same_prefix = ta.Trace.from_text(SOLUTION.replace("First, ", "Next, "), metadata={"problem": PROBLEM})
    ta.intervene(same_prefix, model, [ta.Delete(1)], num_rollouts=1, max_tokens=4, out_dir=folder)
    other = ta.Trace.from_text(SOLUTION.replace("I need to add", "I must add"), metadata={"problem": PROBLEM})
    with pytest.raises(ta.Error, match="another trace"):
        ta.intervene(other, model, [ta.Delete(1)], num_rollouts=1, max_tokens=4, out_dir=folder)
