import re
import subprocess
import sys

import numpy
import pytest
import torch  # noqa: F401  (the package must work in a process that imported torch first)

import thought_anchors as ta
from thought_anchors import white_box
from conftest import REPO


def test_version_matches_version_header():
    header = (REPO / "include" / "anchors" / "version.h").read_text()
    assert re.search(r'#define ANCHORS_VERSION "([^"]+)"', header).group(1) == ta.__version__


def test_error_is_a_value_error_with_the_cpp_message(tmp_path):
    missing = tmp_path / "nope.json"
    try:
        ta.load_result(str(missing))
    except ta.Error as e:
        assert isinstance(e, ValueError)
        assert str(missing) in str(e)
    else:
        raise AssertionError("no error for a missing file")


def test_import_in_fresh_process_without_torch_first():
    # `import thought_anchors` must also work when torch was not imported before.
    out = subprocess.run([sys.executable, "-c", "import thought_anchors as ta; print(ta.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ta.__version__


def test_registry_lists_resampling():
    names = [m.name for m in ta.methods()]
    assert "resampling" in names
    info = next(m for m in ta.methods() if m.name == "resampling")
    assert info.default_options["similarity_threshold"] == 0.8
    assert info.description


def test_methods_own_their_options_headline_and_needs():
    """Each method states its option docs, headline score and needs; the Python objects take their keyword
    arguments from the registry and check them when made, not at .run()."""
    for info in ta.methods():
        assert sorted(info.option_docs) == sorted(info.default_options), info.name
        assert info.headline_scores and info.needs, info.name
    assert ta.method_info("resampling").needs == ["rollouts", "similarity"]
    assert ta.method_info("receiver_heads").needs == ["model"]
    assert ta.method_info("attention_rhythm").headline_scores == ["fai"]
    assert ta.Resampling.default_options() == dict(ta.method_info("resampling").default_options)
    with pytest.raises(ta.Error, match="unknown option.*num_rolouts"):
        ta.ReceiverHeads(num_rolouts=3)
    with pytest.raises(ta.Error, match="top_k expects an integer"):
        ta.ReceiverHeads(top_k="5")
    with pytest.raises(ta.Error, match="exclude_layer0 expects a boolean"):
        ta.ReceiverHeads(exclude_layer0=1)
    assert ta.ReceiverHeads(top_k=numpy.int64(5), heads=[(1, 2)]).options == {"top_k": 5, "heads": [1, 2]}
    assert ta.ReceiverHeads(heads="1:2,3:0").options == {"heads": [1, 2, 3, 0]}
    assert ta.AttentionRhythm(layers=(numpy.int64(1), 2)).options == {"layers": [1, 2]}
    assert ta.method_info("receiver_heads").default_options["heads"] == []
    with pytest.raises(ta.Error, match="list of integers"):
        ta.SentenceAttention(layers="0,x")
    assert ta.AttentionSuppression(temperature=1).options == {"temperature": 1.0}
    # The registry's own check (resolve_options) decides, and says what the option is for.
    with pytest.raises(ta.Error, match=r"top_k expects an integer like 20, got 2.5 \(receiver heads selected"):
        ta.ReceiverHeads(top_k=2.5)
    assert ta.ReceiverHeads(exclude_layer0=numpy.bool_(False)).options == {"exclude_layer0": False}
    assert white_box.checked_options("resampling", {"forced": True, "top_p": 1}) == {"forced": True, "top_p": 1.0}
    with pytest.raises(ta.Error, match="top_k cannot be dict"):
        ta.ReceiverHeads(top_k={})


def test_one_rule_picks_the_series_to_show():
    trace = ta.Trace.from_text("One sentence here. Another one there.")
    result = ta.AnalysisResult(trace, [ta.Attribution("other", scores={"b": [1.0, 2.0], "a": [0.0, 1.0]}),
                                       ta.Attribution("receiver_heads", scores={"x": [1.0, 2.0],
                                                                                "receiver_score": [3.0, 1.0]})])
    assert ta.choose_score(result) == ("receiver_heads", "receiver_score")
    assert ta.choose_score(result, "other") == ("other", "a")
    assert ta.choose_score(result, score="x") == ("receiver_heads", "x")
    with pytest.raises(ta.Error, match="available: other.a, other.b"):
        ta.choose_score(result, score="nope")
    assert ta.choose_score(ta.AnalysisResult(trace, [])) == ("", "")
    assert "receiver_score" in result._repr_html_()


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "thought_anchors", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and ta.__version__ in out.stdout
