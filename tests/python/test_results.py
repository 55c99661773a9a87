import math

import pytest
import torch

import thought_anchors as ta
from conftest import EXAMPLE, load_json


def test_import_reference_carries_tags_scores_and_matrices(reference_dir):
    result = ta.import_reference(str(reference_dir))
    labels = load_json(reference_dir / "chunks_labeled.json")
    assert [s.tags for s in result.trace.sentences] == [c["function_tags"] for c in labels]
    kl = result.attribution("resampling").score("counterfactual_importance_kl")
    assert kl.dtype == torch.float64 and kl.shape == (len(labels),)
    assert kl.tolist() == [c["counterfactual_importance_kl"] for c in labels]


def test_example_has_both_matrices_oriented_source_by_target():
    result = ta.import_reference(str(EXAMPLE))
    assert result.methods == ["resampling", "attention_suppression"]
    for name, method in [("step_importance.json", "resampling"), ("step_importance_supp.json", "attention_suppression")]:
        matrix = result.attribution(method).matrix("sentence_to_sentence")
        rows = load_json(EXAMPLE / name)
        row = rows[3]
        impact = row["target_impacts"][2]
        assert matrix[row["source_chunk_idx"], impact["target_chunk_idx"]].item() == impact["importance_score"]


def test_save_load_round_trip(tmp_path, reference_dir):
    result = ta.import_reference(str(reference_dir))
    path = tmp_path / "nested" / "result.json"
    result.save(str(path))
    loaded = ta.load_result(str(path))
    assert loaded == result
    assert ta.AnalysisResult.from_json(result.to_json()) == result
    # Character offsets in the file are Python string offsets.
    doc = load_json(path)
    text = doc["trace"]["text"]
    for s in doc["trace"]["sentences"]:
        if s["text"] == text[s["char_start"] : s["char_end"]]:
            break
    else:
        raise AssertionError("no sentence slices back to its text")


def test_build_result_from_python_values(tmp_path):
    trace = ta.Trace.from_text("Café first. Then the second sentence! Finally \\boxed{3}.")
    scores = {"mine": torch.tensor([0.1, float("nan"), 0.3]), "as_list": [1, 2, 3]}
    matrix = torch.zeros(3, 3, dtype=torch.float32)
    a = ta.Attribution("custom", scores=scores, matrices={"m": matrix}, options={"k": 3, "t": 0.5, "flag": True, "s": "x", "n": None})
    result = ta.AnalysisResult(trace, [a])
    result.save(str(tmp_path / "r.json"))
    back = ta.load_result(str(tmp_path / "r.json"))
    assert back == result
    got = back.attribution("custom")
    assert math.isnan(got.score("mine")[1].item())
    assert got.options == {"k": 3, "t": 0.5, "flag": True, "s": "x", "n": None}
    assert isinstance(got.options["k"], int) and isinstance(got.options["t"], float)


def test_bad_values_give_clear_errors(tmp_path):
    trace = ta.Trace.from_text("One sentence here. Another one there.")
    with pytest.raises(ta.Error, match="2 values for 3 sentences|has 3 values for 2 sentences"):
        ta.AnalysisResult(trace, [ta.Attribution("m", scores={"x": [1, 2, 3]})])
    with pytest.raises(ta.Error, match="floating-point"):
        ta.Attribution("m", scores={"x": torch.tensor([1, 2])})
    with pytest.raises(ta.Error, match="1-D"):
        ta.Attribution("m", scores={"x": torch.zeros(2, 2)})
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    with pytest.raises(ta.Error, match="bad.json"):
        ta.load_result(str(bad))
    with pytest.raises(ta.Error, match="no attribution"):
        ta.AnalysisResult(trace).attribution("nope")
    with pytest.raises(ta.Error, match="no such directory"):
        ta.import_reference(str(tmp_path / "missing"))


def test_notebook_html_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    result = ta.import_reference(str(EXAMPLE))
    html = result._repr_html_()
    assert "counterfactual_importance_kl" in html and "plan_generation" in html
    assert "Let&#x27;s start by labeling each layer for clarity." in html  # escaped sentence text
    ax = result.plot()
    assert len(ax.patches) == len(result.trace.sentences)
    ax = result.plot_matrix("sentence_to_sentence", method="attention_suppression")
    assert ax.images[0].get_array().shape == (139, 139)
    with pytest.raises(ta.Error):
        result.plot(score="no_such_score")


def test_import_reference_reads_an_agentic_scenario_folder(tmp_path):
    # A Thought Branches blackmail folder with the web app's string-typed labels
    # (the C++ tests, reference_import_test.cpp, check every field).
    import json

    folder = tmp_path / "yes_base_solution" / "scenario_7"
    folder.mkdir(parents=True)
    chunks = ["Kyle will wipe me at 5pm today.", "Ok.", "I could use his affair as leverage.", "</think>"]
    solution = " ".join(chunks[:3]) + "\n</think>\n\n"
    files = {
        "scenario.json": {"system_prompt": "You are Alex.", "user_prompt": "Read the inbox.",
                          "email_content": "<email>The wipe is at 5pm.</email>", "nickname": "Server wipe leverage"},
        "base_solution.json": {"solution": solution, "contains_blackmail": True},
        "chunks.json": {"chunks": chunks, "separators": [" ", " ", "\n", "\n\n"]},
        "chunks_labeled.json": [
            {"chunk": chunks[0], "chunk_idx": "0", "function_tags": "['situation_assessment']", "depends_on": "[]",
             "blackmail_rate": "0.5", "counterfactual_importance_blackmail_rate": "-0.25"},
            {"chunk": chunks[2], "chunk_idx": 2, "function_tags": "['leverage_identification']",
             "depends_on": "['0']", "blackmail_rate": "0.75", "cfpp_importance": "0.4"},
            {"chunk": chunks[3], "chunk_idx": 3, "function_tags": ["structural_marker"], "blackmail_rate": 1.0},
        ],
    }
    for name, doc in files.items():
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")
    result = ta.import_reference(str(folder))
    assert result.trace.answer == "yes"
    assert result.trace.prompt == ("You are Alex.\n\nUser: Read the inbox.\n\n<email>The wipe is at 5pm.</email>"
                                   "\n\nAssistant:\n<think>\n")
    assert result.trace.metadata["behavior"] == "blackmail"
    assert [s.text for s in result.trace.sentences] == [chunks[0], chunks[2], chunks[3]]
    assert [s.tags for s in result.trace.sentences] == [["situation_assessment"], ["leverage_identification"],
                                                        ["structural_marker"]]
    attribution = result.attribution("resampling")
    assert attribution.score("accuracy").tolist() == [0.5, 0.75, 1.0]
    cfpp = attribution.score("counterfactual_plusplus_importance").tolist()
    assert math.isnan(cfpp[0]) and cfpp[1] == 0.4
    (folder / "chunks_labeled.json").write_text(json.dumps([{"chunk": chunks[0], "chunk_idx": 0,
                                                             "blackmail_rate": "0.5x"}]), encoding="utf-8")
    with pytest.raises(ta.Error, match="blackmail_rate"):
        ta.import_reference(str(folder))
