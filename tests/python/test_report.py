"""The HTML report opened in a real browser: headless Chromium (Debian's
`chromium` package, installed by scripts/setup.sh) loads the file, runs its
script and dumps the DOM; the page marks on <body> that it rendered
(data-rendered="ok"), how many sentences, heatmaps and charts it drew, and any
script error (data-errors). A missing chromium is a failure, not a skip."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import thought_anchors as ta
from conftest import EXAMPLE, REPO


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed (apt-get install chromium; scripts/setup.sh installs it)")


def dump_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    """The DOM after the page's scripts ran, as headless Chromium serialises it."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    profile = tmp_path / f"chromium-profile-{abs(hash(url))}"
    cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Just enough of a DOM: <body>'s attributes, elements in document order with
    their attributes, where each element's subtree ends, and the text inside it."""

    VOID = {"meta", "input", "br", "img", "link", "hr", "col", "area", "base", "embed", "source", "track", "wbr"}

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.body = {}
        self.elements = []   # (tag, attrs)
        self.ends = {}       # element index -> index one past its last descendant
        self.text = {}       # element index -> text inside it
        self.stack = []      # indices of the open elements
        self.feed(text)
        self.close()
        for index in self.stack:
            self.ends[index] = len(self.elements)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        self.elements.append((tag, attrs))
        index = len(self.elements) - 1
        self.text[index] = ""
        if tag in self.VOID:
            self.ends[index] = index + 1
        else:
            self.stack.append(index)

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            if self.elements[self.stack[k]][0] == tag:
                for index in self.stack[k:]:
                    self.ends[index] = len(self.elements)
                del self.stack[k:]
                return

    def handle_data(self, data):
        for index in self.stack:
            self.text[index] += data

    def find(self, tag=None, cls=None, id=None):
        return [i for i, (t, attrs) in enumerate(self.elements)
                if (not tag or t == tag) and (not cls or cls in (attrs.get("class") or "").split())
                and (not id or attrs.get("id") == id)]

    def inside(self, outer: int, tag=None, cls=None):
        return [i for i in self.find(tag, cls) if outer < i < self.ends[outer]]


def check_rendered(dom: Dom, result) -> None:
    body = dom.body
    assert body.get("data-rendered") == "ok", body
    assert not body.get("data-errors"), body.get("data-errors")
    n = len(result.trace.sentences)
    assert body.get("data-sentences") == str(n)
    trace = dom.find(id="ta-trace")
    assert len(trace) == 1
    assert len(dom.inside(trace[0], "div", "s")) == n
    # Every matrix of the result is a heatmap with a canvas.
    matrices = sum(1 for a in result.attributions for m in a.matrices.values() if m.numel() > 0)
    assert body.get("data-matrices") == str(matrices)
    grid = dom.find(id="ta-matrices")[0]
    assert len(dom.inside(grid, "canvas")) == matrices
    assert len(dom.inside(grid, "div", "hm")) == matrices
    # The series switch lists every score series.
    series = sum(len(a.scores) for a in result.attributions)
    select = dom.find("select", id="ta-series")[0]
    assert len(dom.inside(select, "option")) == max(series, 1)


def sentence_texts_on_page(dom: Dom) -> list:
    trace = dom.find(id="ta-trace")[0]
    return [dom.text[i] for i in dom.inside(trace, "span", "sx")]


# ---------------------------------------------------------------------------


def test_reference_report_renders_in_chromium(tmp_path):
    result = ta.import_reference(str(EXAMPLE))
    # The authors' chunks_resampled.json layout (EXAMPLE leaves it out for size).
    folder = tmp_path / "problem_330"
    shutil.copytree(EXAMPLE, folder)
    resampled = {"3": ["Compute the nested expression.", "Let me compute it.", "Compute the nested expression."],
                 "5": ["Let me see </script><b>how</b>."]}
    (folder / "chunks_resampled.json").write_text(json.dumps(resampled), encoding="utf-8")

    page = tmp_path / "report.html"
    result.save_report(str(page), alternatives=str(folder), title="Problem 330 & friends")
    text = page.read_text(encoding="utf-8")
    assert "<title>Problem 330 &amp; friends</title>" in text

    dom = Dom(dump_dom(page, tmp_path, "sentence=3"))
    check_rendered(dom, result)
    assert dom.body.get("data-matrices") == "2"       # resampling + attention suppression
    assert dom.body.get("data-series") == "resampling.counterfactual_importance_kl"
    assert sentence_texts_on_page(dom) == [s.text for s in result.trace.sentences]

    # #sentence=3 selected sentence 3: its detail panel shows it and its alternatives.
    assert dom.body.get("data-selected") == "3"
    detail = dom.find(id="ta-detail")[0]
    assert "Sentence 3" in dom.text[detail]
    assert result.trace.sentences[3].text in dom.text[detail]
    alts = dom.find(id="ta-alternatives")
    assert len(alts) == 1
    items = [dom.text[i] for i in dom.inside(alts[0], "li", "alt")]
    assert items == ["\u00d72Compute the nested expression.", "\u00d71Let me compute it."]
    assert dom.body.get("data-alternatives") == "2"
    assert "3 rollouts \u00b7 2 distinct" in dom.text[detail]
    # Strongest links from both sentence matrices, and every score of the sentence.
    assert len(dom.inside(detail, "div", "lk")) == 2
    assert len(dom.inside(detail, "ul", "links")) == 4
    scores = dom.inside(detail, "table", "d-scores")[0]
    assert "counterfactual importance kl" in dom.text[scores]
    # Top anchors: the 10 largest counterfactual_importance_kl values, largest first.
    values = result.attribution("resampling").score("counterfactual_importance_kl").tolist()
    ranked = sorted((i for i, v in enumerate(values) if v == v), key=lambda i: (-values[i], i))[:10]
    top = dom.find("ol", id="ta-top")[0]
    shown = [int(dom.text[i].lstrip("#")) for i in dom.inside(top, "span", "n")]
    assert shown == ranked

    # Sentence 5's alternative with markup is shown as text, not parsed as HTML.
    dom5 = Dom(dump_dom(page, tmp_path, "sentence=5&score=resampling.accuracy"))
    check_rendered(dom5, result)
    assert dom5.body.get("data-series") == "resampling.accuracy"
    alts5 = dom5.find(id="ta-alternatives")[0]
    assert [dom5.text[i] for i in dom5.inside(alts5, "li", "alt")] == ["\u00d71Let me see </script><b>how</b>."]
    assert not dom5.inside(alts5, "b")


def test_white_box_report_renders_in_chromium(tmp_path):
    import torch

    model = ta.Model.load(str(REPO / "tests" / "data" / "tiny_models" / "qwen2_bias_tied"))
    reasoning = ("First, I restate the problem. We need the sum of 12 and 30. Then I add them: 12 + 30 = 42. "
                 "Wait, let me check that again. Yes, 42 is right.\n\nSo the answer is \\boxed{42}.")
    trace = ta.Trace.from_text(reasoning, prompt="Problem: add 12 and 30.", metadata={"problem_id": "tiny"})
    n = len(trace.sentences)
    assert n >= 5
    prompt_tokens, per_sentence = 6, 9
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 256, (prompt_tokens + per_sentence * n,), generator=generator).tolist()
    spans = [(prompt_tokens + per_sentence * i, prompt_tokens + per_sentence * (i + 1)) for i in range(n)]
    inputs = dict(token_ids=ids, sentence_spans=spans)
    result = ta.ReceiverHeads(top_k=2, proximity_ignore=1).run(model, trace, **inputs)
    ta.AttentionSuppression().run(model, trace, into=result, **inputs)
    ta.AttentionRhythm(layers=[1]).run(model, trace, into=result, **inputs)
    ta.SentenceAttention().run(model, trace, into=result, **inputs)

    page = tmp_path / "white_box.html"
    ta.write_report(result, str(page), {0: ["An alternative opening."]})
    dom = Dom(dump_dom(page, tmp_path))
    check_rendered(dom, result)
    # receiver_score is the headline series here; its chart comes with the score profile.
    assert dom.body.get("data-series") == "receiver_heads.receiver_score"
    assert dom.body.get("data-charts") == "2"
    heatmaps = {dom.elements[i][1].get("data-matrix") for i in dom.find("div", "hm")}
    assert {"attention_suppression/suppression", "attention_suppression/suppression_raw",
            "receiver_heads/head_kurtosis", "receiver_heads/receiver_vertical", "attention_rhythm/token_waad",
            "sentence_attention/sentence_attention"} <= heatmaps
    # Selected at load: the top receiver-score sentence; links from the three S×S matrices.
    detail = dom.find(id="ta-detail")[0]
    assert len(dom.inside(detail, "div", "lk")) == 3


def test_report_html_from_python(tmp_path):
    result = ta.import_reference(str(EXAMPLE))
    page = ta.render_report_html(result, {1: ["x", "y"]}, title="T", score="accuracy", top=3, max_links=2)
    assert page.startswith("<!DOCTYPE html>")
    blob = re.search(r'<script type="application/json" id="ta-data">(.*?)</script>', page, re.S).group(1)
    doc = json.loads(blob)
    assert doc["initial"] == {"method": "resampling", "score": "accuracy"}
    assert doc["top_anchors"] == 3 and doc["max_links"] == 2 and doc["title"] == "T"
    assert doc["alternatives"]["1"] == {"total": 2, "distinct": 2, "items": [["x", 1], ["y", 1]]}
    reloaded = tmp_path / "r.json"
    reloaded.write_text(json.dumps(doc["result"]), encoding="utf-8")
    assert ta.load_result(str(reloaded)) == result
    # pathlib paths work; the same page as render_report_html.
    ta.write_report(result, tmp_path / "p.html", {1: ["x", "y"]}, title="T", score="accuracy", top=3, max_links=2)
    assert (tmp_path / "p.html").read_text(encoding="utf-8") == page

    with pytest.raises(ta.Error, match="sentence 500"):
        ta.render_report_html(result, {500: ["x"]})
    with pytest.raises(ta.Error, match="sentence indices"):
        ta.render_report_html(result, {"a": ["x"]})
    with pytest.raises(ta.Error, match="list of strings"):
        ta.render_report_html(result, {1: "x"})
    with pytest.raises(ta.Error, match="no score series"):
        ta.render_report_html(result, score="nope")
    with pytest.raises(ta.Error, match="neither a reference folder"):
        ta.render_report_html(result, str(tmp_path))
    with pytest.raises(ta.Error):
        ta.read_alternatives(str(tmp_path / "missing"), result.trace)


def test_show_displays_the_report_in_an_isolated_iframe(monkeypatch):
    """result.show() in a notebook: IPython.display.HTML with an <iframe srcdoc> holding the page."""
    import sys
    import types

    shown = []
    fake = types.ModuleType("IPython.display")
    fake.HTML = lambda data: types.SimpleNamespace(data=data)
    fake.display = lambda obj: shown.append(obj)
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", fake)

    result = ta.import_reference(str(EXAMPLE))
    result.show(score="accuracy", height=600)
    assert len(shown) == 1
    frame = shown[0].data
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" title="[^"]*" sandbox="allow-scripts" style="[^"]*height:600px[^"]*">'
                         r"</iframe>", frame)
    assert match, frame[:300]
    assert html.unescape(match.group(1)) == ta.render_report_html(result, score="accuracy", top=10)
    # The lightweight table stays the default notebook repr.
    assert "<table" in result._repr_html_()


def test_cli_report(anchors_cli, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([anchors_cli, "report", str(EXAMPLE), "-o", str(out), "--title", "CLI", "--top", "5"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "139 sentences" in done.stdout and "2 matrices" in done.stdout
    page = out.read_text(encoding="utf-8")
    assert "<title>CLI</title>" in page and '"top_anchors":5' in page

    folder = tmp_path / "ref"
    shutil.copytree(EXAMPLE, folder)
    (folder / "chunks_resampled.json").write_text(json.dumps({"0": ["a", "b"]}), encoding="utf-8")
    done = subprocess.run([anchors_cli, "report", str(folder), "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "alternatives for 1 sentences" in done.stdout

    done = subprocess.run([anchors_cli, "report", str(EXAMPLE)], capture_output=True, text=True)
    assert done.returncode == 2 and "missing -o/--output" in done.stderr
    done = subprocess.run([anchors_cli, "report", str(EXAMPLE), "-o", str(out), "--rollouts", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "anchors: error:" in done.stderr
