import random

import pytest

import thought_anchors as ta
from conftest import load_json, reference_chunks


def test_reproduces_authors_chunks(reference_dir):
    solution = load_json(reference_dir / "base_solution.json")["solution"]
    labels = load_json(reference_dir / "chunks_labeled.json")
    sentences = ta.split_sentences(solution)
    assert [s.text for s in sentences] == [c["chunk"] for c in labels]
    assert [s.index for s in sentences] == [c["chunk_idx"] for c in labels]


def test_spans_are_python_string_offsets(reference_dir):
    solution = load_json(reference_dir / "base_solution.json")["solution"]
    for s in ta.split_sentences(solution, merge_shorter_than=0):
        # Without merging every sentence is exactly its span (code point offsets).
        assert solution[s.char_start : s.char_end] == s.text
    for s in ta.split_sentences(solution):
        piece = solution[s.char_start : s.char_end]
        assert piece.startswith(s.text.split(" ")[0]) and piece.endswith(s.text.split(" ")[-1])


def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "b", "é", "×", "日本", "😀", " ", " ", ".", "?", "!", "\n", "\n\n", "\r\n\r\n", "3.14", "\u00a0", "\t", "<think>", "</think>", "ok"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))


def test_matches_slow_reference_on_random_text():
    rng = random.Random(1234)
    for _ in range(3000):
        text = _random_text(rng)
        assert [s.text for s in ta.split_sentences(text)] == reference_chunks(text), repr(text)


def test_options_are_keyword_only_and_take_effect():
    text = "Ok. Fine then, we go on. Next step here.\n\nNew paragraph without a stop"
    assert len(ta.split_sentences(text)) == 3
    assert len(ta.split_sentences(text, merge_shorter_than=0, drop_shorter_than=0)) == 4
    paragraphs = "First paragraph without a stop\n\nSecond paragraph without one"
    assert len(ta.split_sentences(paragraphs)) == 2
    assert len(ta.split_sentences(paragraphs, split_paragraphs=False)) == 1
    assert len(ta.split_sentences(text, sentence_terminators="")) == 2
    with pytest.raises(TypeError):
        ta.split_sentences(text, 10)


def test_think_tags_keep_offsets_into_the_original():
    text = "Prompt here <think>\nFirst sentence is here. Second one follows.</think> The answer is \\boxed{4}."
    sentences = ta.split_sentences(text)
    assert [s.text for s in sentences] == ["First sentence is here.", "Second one follows."]
    assert all(text[s.char_start : s.char_end] == s.text for s in sentences)
    whole = ta.split_sentences(text, think_only=False)
    assert whole[0].text.startswith("Prompt here <think>") and whole[-1].text.endswith("\\boxed{4}.")


def test_trace_from_text_and_validation():
    trace = ta.Trace.from_text("We add two and two. The answer is \\boxed{4}.")
    assert trace.answer == "4" and len(trace) == 2
    sentences = trace.sentences
    sentences[1].char_start = 0  # overlaps sentence 0
    trace.sentences = sentences
    with pytest.raises(ta.Error, match="overlap"):
        trace.validate()
    with pytest.raises(ta.Error):
        ta.Trace(text="abc", sentences=[ta.Sentence(0, "abc", 0, 10)])
