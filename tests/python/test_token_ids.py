"""Token ids as users hold them (bindings/python/src/token_ids.h): every function that takes one sequence of
token ids accepts a list, a 1-D integer torch.Tensor (any integer dtype) or a 1-D integer NumPy array, with the
same result as the list; anything else is a ta.Error that says what was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import thought_anchors as ta


@pytest.fixture(scope="module")
def model():
    return ta.load_embedded_model()


@pytest.fixture(scope="module")
def inputs(model):
    problem = ta.embedded_problem()
    trace = ta.Trace.from_text("I add 2 and 3. So the answer is \\boxed{5}.",
                               metadata={"problem": problem["problem"]})
    ids, spans = ta.tokenize_trace(model.tokenizer, trace)
    return trace, ids, spans


def forms(ids):
    """The same ids in every accepted form."""
    return {"list": list(ids), "tuple": tuple(ids), "int64 tensor": torch.tensor(ids),
            "int32 tensor": torch.tensor(ids, dtype=torch.int32), "int16 tensor": torch.tensor(ids, dtype=torch.int16),
            "numpy int64": np.array(ids, dtype=np.int64), "numpy uint16": np.array(ids, dtype=np.uint16),
            "list of numpy ints": [np.int64(i) for i in ids], "non-contiguous tensor": torch.tensor(
                [x for i in ids for x in (i, -1)])[::2]}


def test_every_form_gives_the_same_result(model, inputs):
    trace, ids, spans = inputs
    want_attention = ta.sentence_attention(model, ids, spans)
    want_rhythm = ta.attention_rhythm(model, ids, response_begin=spans[0][0])
    want_sample = [s.ids for s in model.sample(ids, 2, max_new_tokens=8, seed=3)]
    want_logprobs = ta.LocalProvider(model).prompt_logprobs(ids)
    want_text = model.tokenizer.decode(ids)
    want_logits = model.logits(torch.tensor(ids))
    for name, given in forms(ids).items():
        assert torch.equal(ta.sentence_attention(model, given, spans), want_attention), name
        got_rhythm = ta.attention_rhythm(model, given, response_begin=spans[0][0])
        assert np.array_equal(np.asarray(got_rhythm["waad"]), np.asarray(want_rhythm["waad"])), name
        assert [s.ids for s in model.sample(given, 2, max_new_tokens=8, seed=3)] == want_sample, name
        got = ta.LocalProvider(model).prompt_logprobs(given)
        assert np.allclose(got, want_logprobs, equal_nan=True), name
        assert model.tokenizer.decode(given) == want_text, name
        assert model.generate_greedy(given, 4) == model.generate_greedy(ids, 4), name
        assert torch.equal(model.logits(given), want_logits), name
    # The white-box method objects take them too.
    method = ta.SentenceAttention()
    want = method.run(model, trace, token_ids=ids, sentence_spans=spans).attribution("sentence_attention")
    got = method.run(model, trace, token_ids=torch.tensor(ids), sentence_spans=spans).attribution("sentence_attention")
    assert got == want


def test_what_is_not_token_ids_is_a_clear_error(model, inputs):
    _, ids, spans = inputs
    bad = {"a float tensor": (torch.tensor(ids, dtype=torch.float32), "1-D integer tensor"),
           "a 2-D tensor": (torch.tensor([ids]), "got a 2-D"),
           "a bool tensor": (torch.tensor(ids) > 0, "1-D integer tensor"),
           "a float array": (np.array(ids, dtype=np.float64), "1-D integer array"),
           "a list with a float": ([*ids[:-1], 1.5], "got float at position"),
           "a list with a bool": ([True] + ids[1:], "got bool at position 0"),
           "a string": ("1 2 3", "got str")}
    # Model.logits also takes a batch [B, T], as nested lists too.
    assert torch.equal(model.logits([ids[:5], ids[1:6]]), model.logits(torch.tensor([ids[:5], ids[1:6]])))
    with pytest.raises(ta.Error, match="integer token ids"):
        model.logits(torch.tensor(ids, dtype=torch.float32))
    with pytest.raises(ta.Error, match="ids must be a list, a tensor or an array; could not read"):
        model.logits([ids[:5], ids[:3]])  # ragged
    for name, (given, message) in bad.items():
        with pytest.raises(ta.Error, match=message):
            ta.sentence_attention(model, given, spans)
        with pytest.raises(ta.Error, match=message):
            model.tokenizer.decode(given)
