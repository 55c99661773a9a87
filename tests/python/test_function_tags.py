"""Function tags from Python: the learned and the rule-based tagger (ta.tag_functions), the chat
labeller (ta.label_with_chat, against a local HTTP server) and `anchors tag`."""

import json
import subprocess

import pytest

import thought_anchors as ta
from conftest import REFERENCE_DIRS, LoopbackHandler, loopback

APPLES = (
    "We need to find how many apples Tom has left. First, I will find the total, then subtract what he ate. "
    "A dozen is 12. 3 * 12 = 36. So Tom has 36 apples. Let me check: 36 - 12 = 24, which matches. 12 + 7 = 18. "
    "Wait, 12 + 7 is 19, not 18. So the answer is 19."
)


def apples_trace():
    return ta.Trace(text=APPLES, sentences=ta.split_sentences(APPLES))


def test_names():
    assert ta.function_tag_names() == [
        "problem_setup", "plan_generation", "fact_retrieval", "active_computation", "result_consolidation",
        "uncertainty_management", "self_checking", "final_answer_emission", "unknown",
    ]


def test_small_model_trace():
    trace = apples_trace()
    tagged = ta.tag_functions(trace, method="rules")
    assert [s.tags for s in tagged.sentences] == [
        ["problem_setup"], ["plan_generation"], ["fact_retrieval"], ["active_computation"],
        ["result_consolidation"], ["self_checking"], ["active_computation"], ["uncertainty_management"],
        ["final_answer_emission"],
    ]
    assert all(s.tags == [] for s in trace.sentences)  # a copy: the input is unchanged
    rules = ta.function_tag_rules(trace, method="rules")
    assert [tag for tag, _ in rules] == [s.tags[0] for s in tagged.sentences]
    assert rules[5] == ("self_checking", "check-open")
    # Options: with no inheritance, a sentence without any cue is "unknown".
    text = "Okay, here is the problem. Let me try the other idea here. The weather is nice today."
    bare = ta.Trace(text=text, sentences=ta.split_sentences(text))
    assert ta.tag_functions(bare, method="rules").sentences[-1].tags == ["plan_generation"]  # continues the step before
    assert ta.tag_functions(bare, method="rules", inherit_when_no_cue=False).sentences[-1].tags == ["unknown"]


def test_learned_is_the_default():
    trace = apples_trace()
    tagged = ta.tag_functions(trace)
    assert ta.function_tag_methods() == ["learned", "rules"]
    assert [s.tags for s in tagged.sentences] == [s.tags for s in ta.tag_functions(trace, method="learned").sentences]
    assert all(len(s.tags) == 1 and s.tags[0] in ta.function_tag_names()[:8] for s in tagged.sentences)
    assert all(rule == "learned" for _, rule in ta.function_tag_rules(trace))
    with pytest.raises(ta.Error, match="unknown function tagging method 'llm'"):
        ta.tag_functions(trace, method="llm")


def test_agreement_with_reference_labels():
    agree = total = 0
    for folder in REFERENCE_DIRS:
        reference = ta.import_reference(str(folder)).trace
        tagged = ta.tag_functions(reference, method="rules")
        assert len(tagged.sentences) == len(reference.sentences)
        for ours, theirs in zip(tagged.sentences, reference.sentences):
            assert len(ours.tags) == 1 and ours.tags[0] in ta.function_tag_names()
            agree += ours.tags == theirs.tags
            total += 1
        # The authors' tags are still on the trace we passed in.
        assert reference.sentences[0].tags == ["problem_setup"]
    assert total == 562
    assert agree / total >= 0.68  # measured 0.70 (docs/function-tags.md)


class ChatHandler(LoopbackHandler):
    requests = []
    replies = []  # (status, body) answered in order; the last one repeats

    def do_POST(self):  # noqa: N802 (http.server's name)
        ChatHandler.requests.append((self.path, self.json_body()))
        status, reply = ChatHandler.replies.pop(0) if len(ChatHandler.replies) > 1 else ChatHandler.replies[0]
        self.reply(reply, status)


@pytest.fixture
def chat_server():
    ChatHandler.requests, ChatHandler.replies = [], []
    with loopback(ChatHandler) as url:
        yield url, ChatHandler


def chat_reply(content):
    return json.dumps({"model": "labeller", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                   "content": content}}]})


def test_label_with_chat(chat_server):
    url, handler = chat_server
    trace = apples_trace()
    n = len(trace.sentences)
    labels = {str(i): {"function_tags": ["active_computation"], "depends_on": [i - 1] if i else []} for i in range(n)}
    labels["0"]["function_tags"] = ["problem_setup"]
    handler.replies = [(503, '{"error": {"message": "busy"}}'),
                       (200, chat_reply("```json\n" + json.dumps(labels) + "\n```"))]
    out = ta.label_with_chat(trace, url, model="labeller-7b", api_key="k", backoff_base=0.01, backoff_max=0.02)
    assert len(handler.requests) == 2  # the 503 was retried
    path, request = handler.requests[-1]
    assert path == "/v1/chat/completions"
    assert request["model"] == "labeller-7b"
    user = request["messages"][1]["content"]
    assert all(f"[{i}] {s.text}" in user for i, s in enumerate(trace.sentences))
    assert out.trace.sentences[0].tags == ["problem_setup"]
    assert out.trace.sentences[3].tags == ["active_computation"]
    assert trace.sentences[0].tags == []
    assert out.depends_on[2] == [1] and out.function_tags[0] == ["problem_setup"]
    assert out.model == "labeller" and "```json" in out.content


def test_label_with_chat_errors(chat_server):
    url, handler = chat_server
    trace = apples_trace()
    handler.replies = [(200, chat_reply('{"0": {"function_tags": ["guessing"]}}'))]
    with pytest.raises(ta.Error, match="is not a function tag"):
        ta.label_with_chat(trace, url, max_retries=0)
    lenient = ta.label_with_chat(trace, url, max_retries=0, strict=False)
    assert [s.tags for s in lenient.trace.sentences] == [["unknown"]] * len(trace.sentences)
    handler.replies = [(200, chat_reply("I would rather not."))]
    with pytest.raises(ta.Error, match="no JSON object"):
        ta.label_with_chat(trace, url, max_retries=0)
    handler.replies = [(400, '{"error": {"message": "bad model"}}')]
    with pytest.raises(ta.Error, match="HTTP 400: bad model"):
        ta.label_with_chat(trace, url)
    with pytest.raises(ta.Error, match="base_url"):
        ta.label_with_chat(trace, "localhost:1")
    with pytest.raises(ValueError):  # ta.Error is a ValueError
        ta.label_with_chat(ta.Trace(), url)


def run(cli, *args, stdin=None):
    return subprocess.run([cli, *args], input=stdin, capture_output=True, text=True)


def test_cli_tag(anchors_cli, tmp_path):
    out = run(anchors_cli, "tag", "-", "--method", "rules", stdin=APPLES)
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    assert [i["tag"] for i in items][:2] == ["problem_setup", "plan_generation"]
    assert set(items[0]) == {"index", "text", "tag", "rule"}
    out = run(anchors_cli, "tag", str(REFERENCE_DIRS[0]), "--table", "-o", str(tmp_path / "tagged.json"))
    assert out.returncode == 0, out.stderr
    assert "agreement with the reference tags" in out.stderr
    assert ta.load_result(str(tmp_path / "tagged.json")).trace.sentences[0].tags == ["problem_setup"]
    out = run(anchors_cli, "tag", "-", "--max-check-block", "-1", stdin=APPLES)
    assert out.returncode == 2
